// node --import tsx bench/drift.ts [--rows 200000] [--reference-rows 100000] [--repeat 7] [--actual]
// The drift accounting of a batch chunk alone, in one process, no database: synthetic rides
// (the seeder's generator) read into column sub-batches of 8,192 as a chunk's binary COPY
// fills them, scored once by trip-duration beforehand, then counted into a reference
// profile's bins (built from another month) again and again. Prints µs per row (best and
// median of the repetitions) for the column path a batch chunk takes (addColumns) and the
// per-record path a monitor run takes (add, here over the chunk's row views), and checks
// that both give the same counts and the same PSI.
import { ColumnBatch, rowViews, type ColumnPlan, type RowView } from '../src/batch/columns.ts';
import { readExampleModel } from '../src/demo.ts';
import { LoadedModel } from '../src/registry/runtime.ts';
import type { FeatureSpec } from '../src/registry/spec.ts';
import { FeatureReader } from '../src/monitoring/features.ts';
import { ProfileBuilder, type Profile } from '../src/monitoring/profile.ts';
import { DriftAccumulator, type DriftPartial } from '../src/monitoring/histograms.ts';
import { computeDrift } from '../src/monitoring/drift.ts';
import { generateRides, type Ride } from '../src/rides/synthetic.ts';

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

const ROWS = flag('rows', 200_000);
const REFERENCE_ROWS = flag('reference-rows', 100_000);
const REPEAT = flag('repeat', 7);
const WITH_ACTUAL = process.argv.includes('--actual');
const SUB_BATCH = 8192;
const PG_EPOCH_MS = Date.UTC(2000, 0, 1);

/** The columns a trip-duration chunk reads, typed as planColumns types them for the rides table. */
const PLANS: ColumnPlan[] = [
  { name: 'ride_id', kind: 'key', select: '"ride_id"::int8' },
  { name: 'lpep_pickup_datetime', kind: 'timestamp', select: '"lpep_pickup_datetime"' },
  ...(WITH_ACTUAL ? [{ name: 'duration', kind: 'float', select: '"duration"::float8' } as ColumnPlan] : []),
  { name: 'PULocationID', kind: 'float', select: '"PULocationID"::float8' },
  { name: 'DOLocationID', kind: 'float', select: '"DOLocationID"::float8' },
  { name: 'trip_distance', kind: 'float', select: '"trip_distance"::float8' },
];

function minutes(ride: Ride): number {
  return (Date.parse(`${ride.lpep_dropoff_datetime}Z`) - Date.parse(`${ride.lpep_pickup_datetime}Z`)) / 60_000;
}

/** Sub-batches of rides as copyColumns leaves them. */
function fill(rides: Ride[]): ColumnBatch[] {
  const batches: ColumnBatch[] = [];
  for (let start = 0; start < rides.length; start += SUB_BATCH) {
    const batch = new ColumnBatch(PLANS, SUB_BATCH);
    const n = Math.min(SUB_BATCH, rides.length - start);
    for (let i = 0; i < n; i++) {
      const ride = rides[start + i];
      for (const c of batch.columns) {
        c.nulls[i] = 0;
        const name = c.plan.name;
        if (c.plan.kind === 'key' || c.plan.kind === 'timestamp') {
          const value = BigInt(c.plan.kind === 'key' ? ride.ride_id : (Date.parse(`${ride.lpep_pickup_datetime}Z`) - PG_EPOCH_MS) * 1000);
          c.rawView.setBigInt64(i * 8, value);
        } else c.f64[i] = name === 'duration' ? minutes(ride) : (ride[name as keyof Ride] as number);
      }
    }
    batch.length = n;
    batches.push(batch);
  }
  return batches;
}

const { bytes, spec } = readExampleModel('trip-duration');
const model = await LoadedModel.fromBytes('bench-drift', 1, bytes, spec as FeatureSpec, 1);

// The reference: another month, profiled as `mldeploy models profile` does.
const reader = new FeatureReader(model);
const builder = new ProfileBuilder(reader.features, WITH_ACTUAL);
const referenceRides = [...generateRides({ rows: REFERENCE_ROWS, month: '2024-01' })];
for (let start = 0; start < referenceRides.length; start += SUB_BATCH) {
  const slice = referenceRides.slice(start, start + SUB_BATCH);
  const { predictions } = await model.predict(slice as unknown as Record<string, unknown>[]);
  const values: unknown[] = [];
  slice.forEach((ride, i) => {
    reader.read(ride as unknown as Record<string, unknown>, values);
    builder.add(values, predictions[i], minutes(ride));
  });
}
const reference: Profile = builder.build('bench');

// The measured rows: the next month, scored once, as a chunk would score them.
const batches = fill([...generateRides({ rows: ROWS, month: '2024-02' })]);
const holder = { batch: batches[0] };
const views: RowView[] = rowViews(PLANS, holder, SUB_BATCH);
const scored: Array<Array<number | null>> = [];
for (const batch of batches) {
  holder.batch = batch;
  scored.push((await model.predict(views.slice(0, batch.length))).predictions);
}

type Path = (drift: DriftAccumulator) => void;

const columnPath: Path = (drift) => {
  for (let b = 0; b < batches.length; b++) {
    holder.batch = batches[b];
    drift.addColumns(batches[b], views, scored[b], WITH_ACTUAL ? batches[b].column('duration') : null);
  }
};

const recordPath: Path = (drift) => {
  for (let b = 0; b < batches.length; b++) {
    const batch = batches[b];
    holder.batch = batch;
    const predictions = scored[b];
    const actual = WITH_ACTUAL ? batch.column('duration') : null;
    for (let i = 0; i < batch.length; i++) drift.add(views[i], predictions[i], actual ? actual.f64[i] : null);
  }
};

interface Measured {
  /** Wall µs per row, each repetition. */
  wall: number[];
  /** CPU µs per row of this process (user + system), each repetition: less sensitive to other load. */
  cpu: number[];
  result: DriftPartial | null;
}

function once(path: Path, into: Measured): void {
  const drift = new DriftAccumulator(reference, model);
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  path(drift);
  into.result = drift.result();
  const wall = Number(process.hrtime.bigint() - started) / 1000;
  const used = process.cpuUsage(cpu);
  into.wall.push(wall / ROWS);
  into.cpu.push((used.user + used.system) / ROWS);
}

// Interleaved, so load from other work on the machine weighs on both paths about equally.
const columns: Measured = { wall: [], cpu: [], result: null };
const records: Measured = { wall: [], cpu: [], result: null };
for (let r = 0; r < REPEAT; r++) {
  once(columnPath, columns);
  once(recordPath, records);
}
const best = (xs: number[]) => Math.min(...xs).toFixed(3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1].toFixed(3);
const row = (path: string, m: Measured) => ({ path, 'wall µs/row best': best(m.wall), 'wall median': median(m.wall), 'CPU µs/row best': best(m.cpu), 'CPU median': median(m.cpu) });
const psis = (p: DriftPartial) => {
  const report = computeDrift(reference, p, []);
  return [...report.features.map((f) => [f.name, f.psi] as const), ['prediction', report.prediction.psi] as const];
};
const same = JSON.stringify(columns.result) === JSON.stringify(records.result);
console.log(`drift accounting, ${ROWS} rides of 2024-02 against a profile of ${REFERENCE_ROWS} of 2024-01, ${REPEAT} repetitions${WITH_ACTUAL ? ', with an actual column' : ''}`);
console.table([row('columns (batch chunk: addColumns)', columns), row('records (monitor run: add per record)', records)]);
console.log(
  `PSI: ${psis(columns.result!)
    .map(([name, v]) => `${name} ${v.toFixed(6)}`)
    .join(', ')}; both paths' counts ${same ? 'identical' : 'DIFFER'}`,
);
if (!same) process.exitCode = 1;
