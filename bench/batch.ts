// npm run bench:batch -- --rows 1000000
// (a) a full mldeploy batch run through Temporal, with `mldeploy worker` in its own process;
// (b) the floor: the same read, ONNX inference and write in one process, without Temporal.
// Also the worker's peak RSS for a run of 100k rows and one of --rows rows, and the cost of
// drift accounting: the floor and a Temporal run of a model version with a reference profile.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBatchRun } from '../src/batch/client.ts';
import { parseJob, type BatchJobInput } from '../src/batch/job.ts';
import { RIDE_COLUMNS } from '../src/demo.ts';
import { finalizeRun, planRun, scoreChunk } from '../src/batch/scorer.ts';
import { ModelCache } from '../src/registry/runtime.ts';
import { buildProfile } from '../src/monitoring/build.ts';
import { saveProfile } from '../src/monitoring/store.ts';
import { seedRides } from '../src/rides/seed.ts';
import { freePort } from '../src/stack/ports.ts';
import { openBenchStack, parseFlag, peakRssMiB, registerBenchModel, spawnWorker, stopProcess, type BenchStack } from './support.ts';

const rows = parseFlag('rows', 1_000_000);
const chunkSize = parseFlag('chunk-size', 50_000);
const parallelism = parseFlag('parallelism', 2);
const MONTH_ROWS = 9_000_000;

async function seedTable(stack: BenchStack, table: string, n: number): Promise<void> {
  await stack.pool.query(`DROP TABLE IF EXISTS ${table} CASCADE`);
  await stack.pool.query(`CREATE TABLE ${table} (LIKE rides INCLUDING ALL)`);
  for (let month = 1, left = n; left > 0; month++, left -= MONTH_ROWS) {
    await seedRides(stack.pool, { rows: Math.min(left, MONTH_ROWS), month: `2024-${String(month).padStart(2, '0')}`, table });
  }
}

function jobFor(model: string, table: string, name: string): BatchJobInput {
  return { name, model, source: { table, ...RIDE_COLUMNS }, window: { from: '2024-01-01T00:00:00Z', to: '2025-01-01T00:00:00Z' }, chunkSize, parallelism };
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

const stack = await openBenchStack();
const models = new ModelCache(stack.store, 1);
try {
  const model = await registerBenchModel(stack.store, 'trip-duration');
  console.log(`seeding ${rows} rides (and 100000 for the memory comparison)…`);
  await seedTable(stack, 'bench_rides', rows);
  await seedTable(stack, 'bench_rides_100k', 100_000);

  await floorRun(stack, models, model, 'bench_rides_100k'); // warm-up: caches, model load
  const floorSeconds = await floorRun(stack, models, model, 'bench_rides');
  const small = await temporalRun(stack, model, 'bench_rides_100k');
  const full = await temporalRun(stack, model, 'bench_rides');

  // The same ONNX file under another name, with a reference profile: its runs count drift.
  const monitored = await registerBenchModel(stack.store, 'trip-duration');
  const monitoredVersion = await stack.store.resolve(monitored);
  const window = { from: '2024-01-01T00:00:00Z', to: '2025-01-01T00:00:00Z' };
  const profileSource = { kind: 'table', table: 'bench_rides_100k', timestampColumn: RIDE_COLUMNS.timestampColumn, ...window } as const;
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

  const rate = (s: number) => Math.round(rows / s);
  console.log(`\nbatch scoring, ${rows} rows, chunk ${chunkSize}, parallelism ${parallelism}, ${os.cpus().length} cores`);
  console.table([
    { run: '(a) mldeploy through Temporal', seconds: full.seconds.toFixed(2), 'rows/s': rate(full.seconds) },
    { run: '(b) floor: same work, no Temporal', seconds: floorSeconds.toFixed(2), 'rows/s': rate(floorSeconds) },
  ]);
  console.log(`time ratio a/b: ${(full.seconds / floorSeconds).toFixed(2)}  (target ≤ 1.5)`);
  console.log(`throughput (a): ${rate(full.seconds)} rows/s  (target ≥ 100000)`);
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
  console.log(`worker memory at the end: 100k run: ${small.memory}; ${rows} run: ${full.memory}`);
  console.log(
    `worker peak RSS: ${small.rssMiB.toFixed(0)} MiB at 100k rows, ${full.rssMiB.toFixed(0)} MiB at ${rows} rows, ratio ${(full.rssMiB / small.rssMiB).toFixed(2)}  (target ≤ 1.3)`,
  );
} finally {
  await models.release();
  await stack.close();
}
