// npm run bench:batch -- --rows 1000000 [--small-rows 100000] [--no-drift] [--no-layouts]
// (a) a full mldeploy batch run through Temporal, with `mldeploy worker` in its own process;
// (b) the same functions (planRun, scoreChunk, finalizeRun) in one process, without Temporal;
// (c) the COPY floor: the window's needed columns read with COPY, and as many prediction rows
//     written with COPY into the lean layout, with the same parallelism;
// bytes per stored prediction; the worker's peak RSS for a run of --small-rows rows and one
// of --rows rows; and (unless --no-drift) the cost of drift accounting.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { to as copyTo, from as copyFrom } from 'pg-copy-streams';
import { startBatchRun } from '../src/batch/client.ts';
import { parseJob, type BatchJobInput } from '../src/batch/job.ts';
import { RIDE_COLUMNS } from '../src/demo.ts';
import { finalizeRun, planRun, scoreChunk } from '../src/batch/scorer.ts';
import { ModelCache, type LoadedModel } from '../src/registry/runtime.ts';
import { buildProfile } from '../src/monitoring/build.ts';
import { saveProfile } from '../src/monitoring/store.ts';
import { seedRides } from '../src/rides/seed.ts';
import { freePort } from '../src/stack/ports.ts';
import { openBenchStack, parseFlag, peakRssMiB, registerBenchModel, spawnWorker, stopProcess, type BenchStack } from './support.ts';

const rows = parseFlag('rows', 1_000_000);
const chunkSize = parseFlag('chunk-size', 50_000);
const parallelism = parseFlag('parallelism', 2);
const smallRows = parseFlag('small-rows', 100_000);
const withDrift = !process.argv.includes('--no-drift');
/** Without it, (c) also writes the old layout and measures re-scoring (two more passes over the rows). */
const withLayouts = !process.argv.includes('--no-layouts');
const MONTH_ROWS = 9_000_000;
const WINDOW = { from: '2024-01-01T00:00:00Z', to: '2025-01-01T00:00:00Z' };

async function seedTable(stack: BenchStack, table: string, n: number): Promise<void> {
  await stack.pool.query(`DROP TABLE IF EXISTS ${table} CASCADE`);
  await stack.pool.query(`CREATE TABLE ${table} (LIKE rides INCLUDING ALL)`);
  for (let month = 1, left = n; left > 0; month++, left -= MONTH_ROWS) {
    await seedRides(stack.pool, { rows: Math.min(left, MONTH_ROWS), month: `2024-${String(month).padStart(2, '0')}`, table });
  }
}

function jobFor(model: string, table: string, name: string): BatchJobInput {
  return { name, model, source: { table, ...RIDE_COLUMNS }, window: WINDOW, chunkSize, parallelism };
}

/** CPU seconds of this process (user + system) per floor run, in order: less sensitive than wall time to other load on the machine. */
const floorCpu: number[] = [];

/** (b): the scorer's own functions, chunks run with the same parallelism, no Temporal. */
async function floorRun(stack: BenchStack, models: ModelCache, model: string, table: string): Promise<number> {
  const job = parseJob(jobFor(model, table, `floor-${table}`));
  const version = await stack.store.resolve(job.model);
  const loaded = await models.get(version);
  const ctx = {
    runId: `floor-${Date.now()}`,
    workflowId: 'floor',
    job,
    window: { from: new Date(job.window!.from).toISOString(), to: new Date(job.window!.to).toISOString() },
    model: { name: version.name, version: version.version },
  };
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const plan = await planRun(stack.pool, ctx, loaded);
  let next = 0;
  const lane = async () => {
    while (next < plan.chunks) await scoreChunk(stack.pool, ctx, next++, loaded);
  };
  await Promise.all(Array.from({ length: parallelism }, lane));
  const summary = await finalizeRun(stack.pool, ctx);
  if (summary.rowsScored !== plan.rows) throw new Error(`floor scored ${summary.rowsScored} of ${plan.rows}`);
  const cpu = process.cpuUsage(cpuBefore);
  floorCpu.push((cpu.user + cpu.system) / 1e6);
  return (performance.now() - started) / 1000;
}

/** (a): a worker process and a workflow; returns seconds and the worker's peak RSS. */
/** Where the worker's memory is at the end of a run (V8 heap, buffers outside it), from its /metrics. */
async function workerMemory(port: number): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const mib = (name: string) => (Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20).toFixed(0);
  return `heap used ${mib('mldeploy_process_nodejs_heap_size_used_bytes')} / total ${mib('mldeploy_process_nodejs_heap_size_total_bytes')} MiB, external ${mib('mldeploy_process_nodejs_external_memory_bytes')} MiB`;
}

async function temporalRun(stack: BenchStack, model: string, table: string): Promise<{ seconds: number; rssMiB: number; memory: string }> {
  const taskQueue = `bench-${table}-${Date.now()}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-bench-worker-'));
  const metricsPort = await freePort();
  const worker = await spawnWorker({
    ...stack.childEnv,
    MLDEPLOY_TASK_QUEUE: taskQueue,
    MLDEPLOY_DATA_DIR: dataDir,
    MLDEPLOY_WORKER_METRICS_PORT: String(metricsPort),
    MLDEPLOY_SDK_METRICS_PORT: '0',
  });
  try {
    const started = performance.now();
    const handle = await startBatchRun(stack.client, taskQueue, jobFor(model, table, `temporal-${table}-${Date.now()}`));
    const summary = await handle.result();
    const seconds = (performance.now() - started) / 1000;
    const expected = Number((await stack.pool.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
    if (summary.rowsScored !== expected) throw new Error(`Temporal run scored ${summary.rowsScored} of ${expected}`);
    return { seconds, rssMiB: peakRssMiB(worker.pid!), memory: await workerMemory(metricsPort) };
  } finally {
    await stopProcess(worker);
  }
}

/** Key ranges splitting the window's rows into `lanes` equal parts. */
async function laneRanges(stack: BenchStack, table: string, lanes: number): Promise<Array<{ lo: number; hi: number; rows: number }>> {
  const { rows } = await stack.pool.query(
    `SELECT min(ride_id) AS lo, max(ride_id) AS hi, count(*)::int AS rows
     FROM (SELECT ride_id, ntile($1) OVER (ORDER BY ride_id) AS lane FROM ${table} WHERE lpep_pickup_datetime >= $2 AND lpep_pickup_datetime < $3) t
     GROUP BY lane ORDER BY lane`,
    [lanes, WINDOW.from, WINDOW.to],
  );
  return rows;
}

/** Binary COPY rows shaped as mldeploy writes them (run_key, entity_id, prediction, actual NULL, event_time), 8,192 at a time. */
function* leanCopyRows(lo: number, rows: number): Generator<Buffer> {
  const header = Buffer.alloc(19);
  header.write('PGCOPY\n\xff\r\n\0', 0, 'latin1');
  yield header;
  const eventTime = BigInt(Date.parse('2024-06-15T12:00:00Z') - Date.parse('2000-01-01T00:00:00Z')) * 1000n;
  for (let start = 0; start < rows; start += 8192) {
    const n = Math.min(8192, rows - start);
    const buf = Buffer.allocUnsafe(n * 50);
    let at = 0;
    for (let i = 0; i < n; i++) {
      at = buf.writeInt16BE(5, at);
      at = buf.writeInt32BE(4, at);
      at = buf.writeInt32BE(1, at);
      at = buf.writeInt32BE(8, at);
      at = buf.writeBigInt64BE(BigInt(lo + start + i), at);
      at = buf.writeInt32BE(8, at);
      at = buf.writeDoubleBE(5 + ((start + i) % 97) / 7, at);
      at = buf.writeInt32BE(-1, at);
      at = buf.writeInt32BE(8, at);
      at = buf.writeBigInt64BE(eventTime, at);
    }
    yield buf.subarray(0, at);
  }
  yield Buffer.from([0xff, 0xff]);
}

/** The same rows in today's old layout (every row repeats job, model and run), as CSV. */
function* fullCopyRows(lo: number, rows: number): Generator<string> {
  for (let start = 0; start < rows; start += 8192) {
    let text = '';
    for (let i = start; i < Math.min(rows, start + 8192); i++) {
      text += `floor-bench_rides,${lo + i},${5 + (i % 97) / 7},,2024-06-15 12:00:00,,bench-trip-duration-1796112355926,1,01a230a3-9173-78f4-976c-a2d2e546a619\n`;
    }
    yield text;
  }
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return (performance.now() - started) / 1000;
}

/** One COPY … FROM STDIN of `rows` on a connection of its own, in a transaction. */
async function copyIn(stack: BenchStack, sql: string, rows: Iterable<Buffer | string>): Promise<void> {
  const client = await stack.pool.connect();
  try {
    await client.query('BEGIN');
    await pipeline(Readable.from(rows), client.query(copyFrom(sql)));
    await client.query('COMMIT');
  } finally {
    client.release();
  }
}

/** COPY out of one lane's needed columns, bytes counted and dropped. */
async function copyOut(stack: BenchStack, table: string, columns: string[], lane: { lo: number; hi: number }): Promise<number> {
  const client = await stack.pool.connect();
  let bytes = 0;
  try {
    const sql = `COPY (SELECT ${columns.map((c) => `"${c}"`).join(', ')} FROM ${table}
      WHERE ride_id BETWEEN ${lane.lo} AND ${lane.hi} AND lpep_pickup_datetime >= '${WINDOW.from}' AND lpep_pickup_datetime < '${WINDOW.to}') TO STDOUT (FORMAT binary)`;
    for await (const chunk of client.query(copyTo(sql))) bytes += (chunk as Buffer).length;
    return bytes;
  } finally {
    client.release();
  }
}

async function relationBytes(stack: BenchStack, relation: string): Promise<number> {
  return Number((await stack.pool.query('SELECT pg_total_relation_size($1) AS n', [relation])).rows[0].n);
}

interface Floor {
  read: number;
  write: number;
  both: number;
  /** The floor: the faster of reading then writing, and both at once. */
  seconds: number;
  leanBytesPerRow: number;
  fullWrite: number;
  fullBytesPerRow: number;
  rescoreDelete: number;
  rescoreSwap: number;
  bytesAfterDelete: number;
  bytesAfterSwap: number;
}

/** (c): the COPY floor with the same parallelism, and what the storage layouts cost. */
async function copyFloor(stack: BenchStack, table: string, model: LoadedModel): Promise<Floor> {
  const lanes = await laneRanges(stack, table, parallelism);
  const total = lanes.reduce((n, l) => n + l.rows, 0);
  const columns = [...new Set([RIDE_COLUMNS.idColumn, RIDE_COLUMNS.timestampColumn, ...model.mapper.requiredFields()])];
  const lean = 'bench_floor_predictions';
  const full = 'bench_floor_full';
  await stack.pool.query(`DROP TABLE IF EXISTS ${lean}, ${full}, ${lean}_next`);
  await stack.pool.query(`CREATE TABLE ${lean} (LIKE batch_predictions INCLUDING ALL)`);
  await stack.pool.query(`CREATE TABLE ${full} (job text NOT NULL, entity_id bigint NOT NULL, prediction double precision NOT NULL, actual double precision,
    event_time timestamp, passthrough jsonb, model_name text NOT NULL, model_version integer NOT NULL, run_id text NOT NULL,
    scored_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (job, entity_id))`);
  const leanCopy = `COPY ${lean} (run_key, entity_id, prediction, actual, event_time) FROM STDIN (FORMAT binary)`;
  const writeLean = (into = leanCopy) => Promise.all(lanes.map((l) => copyIn(stack, into, leanCopyRows(l.lo, l.rows))));
  const read = await timed(() => Promise.all(lanes.map((l) => copyOut(stack, table, columns, l))));
  const write = await timed(() => writeLean());
  const leanBytesPerRow = (await relationBytes(stack, lean)) / total;
  await stack.pool.query(`TRUNCATE ${lean}`);
  const both = await timed(() => Promise.all([...lanes.map((l) => copyOut(stack, table, columns, l)), writeLean()]));
  if (!withLayouts) {
    await stack.pool.query(`DROP TABLE IF EXISTS ${lean}, ${full}`);
    return {
      read,
      write,
      both,
      seconds: Math.min(read + write, both),
      leanBytesPerRow,
      fullWrite: NaN,
      fullBytesPerRow: NaN,
      rescoreDelete: NaN,
      rescoreSwap: NaN,
      bytesAfterDelete: NaN,
      bytesAfterSwap: NaN,
    };
  }
  const fullWrite = await timed(() =>
    Promise.all(
      lanes.map((l) =>
        copyIn(
          stack,
          `COPY ${full} (job, entity_id, prediction, actual, event_time, passthrough, model_name, model_version, run_id) FROM STDIN (FORMAT csv)`,
          fullCopyRows(l.lo, l.rows),
        ),
      ),
    ),
  );
  const fullBytesPerRow = (await relationBytes(stack, full)) / total;
  // Re-scoring the window: DELETE and COPY in one transaction per lane (what a chunk does),
  // against COPY into a fresh table and swapping it in (what a partition per run would do).
  const rescoreDelete = await timed(() =>
    Promise.all(
      lanes.map(async (l) => {
        const client = await stack.pool.connect();
        try {
          await client.query('BEGIN');
          await client.query(`DELETE FROM ${lean} WHERE run_key = 1 AND entity_id BETWEEN $1 AND $2`, [l.lo, l.lo + l.rows - 1]);
          await pipeline(Readable.from(leanCopyRows(l.lo, l.rows)), client.query(copyFrom(leanCopy)));
          await client.query('COMMIT');
        } finally {
          client.release();
        }
      }),
    ),
  );
  const bytesAfterDelete = (await relationBytes(stack, lean)) / total;
  const rescoreSwap = await timed(async () => {
    await stack.pool.query(`CREATE TABLE ${lean}_next (LIKE batch_predictions INCLUDING ALL)`);
    await writeLean(leanCopy.replace(lean, `${lean}_next`));
    await stack.pool.query(`BEGIN; DROP TABLE ${lean}; ALTER TABLE ${lean}_next RENAME TO ${lean}; COMMIT`);
  });
  const bytesAfterSwap = (await relationBytes(stack, lean)) / total;
  await stack.pool.query(`DROP TABLE IF EXISTS ${lean}, ${full}`);
  return { read, write, both, seconds: Math.min(read + write, both), leanBytesPerRow, fullWrite, fullBytesPerRow, rescoreDelete, rescoreSwap, bytesAfterDelete, bytesAfterSwap };
}

const stack = await openBenchStack();
const models = new ModelCache(stack.store, 1);
try {
  const model = await registerBenchModel(stack.store, 'trip-duration');
  const small = `bench_rides_${smallRows}`;
  console.log(`seeding ${rows} rides (and ${smallRows} for the memory comparison)…`);
  await seedTable(stack, 'bench_rides', rows);
  await seedTable(stack, small, smallRows);

  await floorRun(stack, models, model, small); // warm-up: caches, model load
  const floorSeconds = await floorRun(stack, models, model, 'bench_rides');
  const copy = await copyFloor(stack, 'bench_rides', await models.get(await stack.store.resolve(model)));
  const smallRun = await temporalRun(stack, model, small);
  const sizeBefore = await relationBytes(stack, 'batch_predictions');
  const full = await temporalRun(stack, model, 'bench_rides');
  const bytesPerPrediction = ((await relationBytes(stack, 'batch_predictions')) - sizeBefore) / rows;

  const rate = (s: number) => Math.round(rows / s);
  const load = () =>
    os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' ');
  console.log(`\nbatch scoring, ${rows} rows, chunk ${chunkSize}, parallelism ${parallelism}, ${os.cpus().length} cores, load average ${load()}`);
  console.table([
    { run: '(a) mldeploy through Temporal', seconds: full.seconds.toFixed(2), 'rows/s': rate(full.seconds) },
    { run: '(b) same functions, no Temporal', seconds: floorSeconds.toFixed(2), 'rows/s': rate(floorSeconds) },
    { run: '(c) COPY floor: read + write', seconds: copy.seconds.toFixed(2), 'rows/s': rate(copy.seconds) },
    { run: '    COPY read of the needed columns', seconds: copy.read.toFixed(2), 'rows/s': rate(copy.read) },
    { run: '    COPY write into the lean layout', seconds: copy.write.toFixed(2), 'rows/s': rate(copy.write) },
    { run: '    both at once', seconds: copy.both.toFixed(2), 'rows/s': rate(copy.both) },
    { run: '    COPY write into the old layout', seconds: copy.fullWrite.toFixed(2), 'rows/s': rate(copy.fullWrite) },
  ]);
  console.log(`throughput (a): ${rate(full.seconds)} rows/s  (target ≥ 270000)`);
  console.log(
    `a/c (c's time over a's): ${(copy.seconds / full.seconds).toFixed(2)}  (target ≥ 0.6);  b/c: ${(copy.seconds / floorSeconds).toFixed(2)};  a/b time ratio: ${(full.seconds / floorSeconds).toFixed(2)}`,
  );
  console.log(
    `bytes per stored prediction, index included: ${bytesPerPrediction.toFixed(1)} for run (a) (growth of batch_predictions / rows; target ≤ 120); floor's lean table ${copy.leanBytesPerRow.toFixed(1)}; old layout ${copy.fullBytesPerRow.toFixed(1)}`,
  );
  console.log(
    `re-scoring the window on the floor's table: DELETE + COPY ${copy.rescoreDelete.toFixed(2)} s, then ${copy.bytesAfterDelete.toFixed(1)} bytes per live row; COPY into a fresh table + swap ${copy.rescoreSwap.toFixed(2)} s, then ${copy.bytesAfterSwap.toFixed(1)} bytes per row`,
  );
  console.log(`worker memory at the end: ${smallRows} run: ${smallRun.memory}; ${rows} run: ${full.memory}`);
  console.log(
    `worker peak RSS: ${smallRun.rssMiB.toFixed(0)} MiB at ${smallRows} rows (${smallRun.seconds.toFixed(2)} s), ${full.rssMiB.toFixed(0)} MiB at ${rows} rows (${full.seconds.toFixed(2)} s), RSS ratio ${(full.rssMiB / smallRun.rssMiB).toFixed(2)}  (target ≤ 1.3), time ratio ${(full.seconds / smallRun.seconds).toFixed(2)} for ${(rows / smallRows).toFixed(0)}× the rows`,
  );

  if (withDrift) {
    // The same ONNX file under another name, with a reference profile: its runs count drift.
    const monitored = await registerBenchModel(stack.store, 'trip-duration');
    const monitoredVersion = await stack.store.resolve(monitored);
    const profileSource = { kind: 'table', table: small, timestampColumn: RIDE_COLUMNS.timestampColumn, ...WINDOW } as const;
    await saveProfile(stack.pool, monitoredVersion, await buildProfile(stack.pool, await models.get(monitoredVersion), profileSource));
    // Interleaved, best of two each: the machine is shared, so single runs are noisy.
    const floorDrift: number[] = [];
    const floorPlain: number[] = [];
    const [cpuDrift, cpuPlain]: [number[], number[]] = [[], []];
    for (let i = 0; i < 2; i++) {
      floorDrift.push(await floorRun(stack, models, monitored, 'bench_rides'));
      cpuDrift.push(floorCpu[floorCpu.length - 1]);
      floorPlain.push(await floorRun(stack, models, model, 'bench_rides'));
      cpuPlain.push(floorCpu[floorCpu.length - 1]);
    }
    // Without, with, without, … so each run with drift sits between two without: the ratio to
    // their mean cancels a load that rises or falls steadily during the benchmark.
    const temporalPlain = [full.seconds];
    const temporalDrift: number[] = [];
    for (let i = 0; i < 3; i++) {
      temporalDrift.push((await temporalRun(stack, monitored, 'bench_rides')).seconds);
      temporalPlain.push((await temporalRun(stack, model, 'bench_rides')).seconds);
    }
    const bracketed = temporalDrift.map((d, i) => d / ((temporalPlain[i] + temporalPlain[i + 1]) / 2)).sort((x, y) => x - y);
    const [plainBest, driftBest] = [Math.min(floorSeconds, ...floorPlain), Math.min(...floorDrift)];
    console.log(
      `drift accounting, floor (best of ${floorPlain.length + 1} without / ${floorDrift.length} with): ${plainBest.toFixed(2)} s → ${driftBest.toFixed(2)} s, ratio ${(driftBest / plainBest).toFixed(3)}  (target ≤ 1.10)`,
    );
    console.log(
      `drift accounting, through Temporal: median ratio to the neighbouring runs without ${bracketed[1].toFixed(3)} (all: ${bracketed.map((r) => r.toFixed(3)).join(', ')})  (target ≤ 1.10)`,
    );
    console.log(
      `  runs without: ${temporalPlain.map((x) => x.toFixed(2)).join(', ')} s; with: ${temporalDrift.map((x) => x.toFixed(2)).join(', ')} s (in the order without, with, without, …)`,
    );
    console.log(
      `drift accounting, CPU of the scoring process in the floor runs: without ${cpuPlain.map((x) => x.toFixed(2)).join(', ')} s, with ${cpuDrift.map((x) => x.toFixed(2)).join(', ')} s, ratio of the minima ${(Math.min(...cpuDrift) / Math.min(...cpuPlain)).toFixed(3)}`,
    );
    console.log(`  floor runs without: ${[floorSeconds, ...floorPlain].map((x) => x.toFixed(2)).join(', ')} s; with: ${floorDrift.map((x) => x.toFixed(2)).join(', ')} s`);
  }
  console.log(`load average at the end: ${load()}`);
} finally {
  await models.release();
  await stack.close();
}
