// Streaming fan-out benchmark: ride_started events at fixed arrival rates (open loop: an
// event is emitted on schedule whether or not earlier ones are done), each waited on for its
// decision. Events enter as producers send them, through the event ingress that
// `POST /v1/events` and `emitEvent()` callers use. Reports the sustained rate,
// event→decision latency, backlog growth, the CPU time each event costs (the dev server's,
// the workers', this process's and PostgreSQL's), the PostgreSQL rows and bytes it stores and
// Temporal history events per event, beside a floor: the same three model calls and the
// decision in-process, without Temporal.
//
//   npm run bench:stream -- [--mode batched|per-event] [--seconds 60] [--rates 500,1000,2000,5000]
//
// Uses the configured PostgreSQL (or the embedded one) and, unless TEMPORAL_ADDRESS is set, a
// fresh in-memory Temporal dev server of its own. Workers run in this process.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, DefaultLogger, type Worker } from '@temporalio/worker';
import { loadConfig } from '../src/config.ts';
import { ensureExampleModels } from '../src/demo.ts';
import { ModelCache } from '../src/registry/runtime.ts';
import { ModelStore } from '../src/registry/store.ts';
import { openStack, externalTemporal } from '../src/stack/stack.ts';
import { startDevServer } from '../src/stack/temporal-server.ts';
import { findTemporalCli } from '../src/stack/temporal-cli.ts';
import { freePort } from '../src/stack/ports.ts';
import { peakRssMiB, spawnWorker, stopProcess } from './support.ts';
import { decide } from '../src/streaming/policy.ts';
import { loadRouting, type Routing } from '../src/streaming/routing.ts';
import { streamingSettings } from '../src/streaming/settings.ts';
import { EventIngress } from '../src/streaming/ingress.ts';
import { PostgresInboundLog } from '../src/streaming/inbound-log.ts';
import { partitionTimeline } from './partition-timeline.ts';
import { partitionWorkflowId } from '../src/streaming/partition-types.ts';
import { createConsumerWorkers, createEventWorker, createPartitionActivityWorker, selectConsumerQueues } from '../src/streaming/workers.ts';
import { WORKFLOWS_PATH } from '../src/worker.ts';
import type { ConsumerOutcome } from '../src/streaming/types.ts';

const opts = new Command()
  .option('--seconds <n>', 'seconds at each rate', '60')
  .option('--mode <mode>', 'fan-out mode of ride_started: batched or per-event', 'batched')
  .option('--rates <list>', 'arrival rates, events per second (default: 500,1000,2000,5000 batched; 20,50,100 per-event)')
  .option('--workers <n>', 'worker processes (`mldeploy worker`, each running the main queue and every consumer); 0 runs the workers inside this process', '1')
  .option('--partitions <n>', "batched mode: partitions of ride_started (default: the shipped routing's)")
  .option('--max-in-flight <n>', "batched mode: ranges in flight per partition (default: the shipped routing's)")
  .option('--persistent', 'the dev server keeps its history in a SQLite file, as `mldeploy dev` runs it (default: in memory)')
  .parse()
  .opts<{ seconds: string; rates?: string; mode: string; workers: string; partitions?: string; maxInFlight?: string; persistent?: boolean }>();
if (opts.mode !== 'batched' && opts.mode !== 'per-event') throw new Error(`--mode must be batched or per-event, got ${opts.mode}`);
const mode = opts.mode;
const seconds = Number(opts.seconds);
const workerProcesses = Number(opts.workers);
if (!Number.isInteger(workerProcesses) || workerProcesses < 0) throw new Error('--workers must be a whole number');
const rates = (opts.rates ?? (mode === 'batched' ? '500,1000,2000,5000' : '20,50,100')).split(',').map(Number);
if (!(seconds > 0) || rates.some((r) => !(r > 0))) throw new Error('--seconds and --rates must be positive numbers');

const say = (line: string) => process.stdout.write(`${line}\n`);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function ride(i: number) {
  return { PULocationID: 1 + (i % 260), DOLocationID: 1 + ((i * 7) % 260), trip_distance: 0.5 + (i % 40) * 0.7 };
}

/** CPU seconds a process has used so far (user + system), from /proc. */
function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Fields of /proc/<pid>/stat after the command name (field 3 is at index 0). */
const statFields = (pid: number) => fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');

/**
 * CPU seconds the PostgreSQL server has used so far: the postmaster, its live children, and
 * (through the postmaster's cutime/cstime) the children that have exited.
 */
function postgresCpuSeconds(postmaster: number): number {
  let ticks = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const f = statFields(Number(entry));
      if (Number(entry) === postmaster) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      else if (Number(f[1]) === postmaster) ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // The process ended while we looked.
    }
  }
  return ticks / 100;
}

/** Slope (per second) of a least-squares line through (t, y) samples. */
function slope(samples: Array<[number, number]>): number {
  const n = samples.length;
  if (n < 2) return 0;
  const mt = samples.reduce((s, [t]) => s + t, 0) / n;
  const my = samples.reduce((s, [, y]) => s + y, 0) / n;
  const num = samples.reduce((s, [t, y]) => s + (t - mt) * (y - my), 0);
  const den = samples.reduce((s, [t]) => s + (t - mt) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

Runtime.install({ logger: new DefaultLogger('ERROR') });
const config = loadConfig();
const stack = await openStack(config, { temporal: false });
const store = new ModelStore(stack.pool);
await ensureExampleModels(store, config.maxModelBytes);

// A SQLite file of this run's own (with --persistent), the CLI found as mldeploy finds it.
const serverDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-bench-temporal-'));
const cliPath = (await findTemporalCli({ cliPath: config.temporal.cliPath, dataDir: config.dataDir })) ?? undefined;
const server = config.temporal.external
  ? undefined
  : await startDevServer({ dataDir: serverDir, cliPath, port: await freePort(), uiPort: 0, persistent: opts.persistent === true });
const target = server ? { connectionOptions: { address: server.address }, namespace: 'default' } : externalTemporal();
const connection = await Connection.connect(target.connectionOptions as Parameters<typeof Connection.connect>[0]);
const client = new Client({ connection, namespace: target.namespace });
const native = await NativeConnection.connect(target.connectionOptions as Parameters<typeof NativeConnection.connect>[0]);
// The workers below run in this process on `native`, as under `mldeploy dev`: start eagerly through it.
const eagerClient = new Client({ connection: native, namespace: target.namespace });

// The shipped routing, on task queues and streams of this run only.
const tag = `bench-${Date.now().toString(36)}`;
const shipped = await loadRouting(path.resolve('config/routing.json'));
const routing: Routing = {
  events: {
    ride_started: {
      ...shipped.events.ride_started,
      mode,
      ...(opts.partitions === undefined ? {} : { partitions: Number(opts.partitions) }),
      ...(opts.maxInFlight === undefined ? {} : { maxInFlight: Number(opts.maxInFlight) }),
      consumers: shipped.events.ride_started.consumers.map((c) => ({ ...c, taskQueue: `${tag}-consumer-${c.name}` })),
    },
  },
};
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-bench-'));
const routingFile = path.join(dir, 'routing.json');
fs.writeFileSync(routingFile, JSON.stringify(routing));

const models = new ModelCache(store, 1);
const settings = streamingSettings({ ...config.streaming, routingFile, namespace: tag }, stack.pool);
const inbound = new PostgresInboundLog(stack.pool, tag);
const deps = { connection: native, namespace: target.namespace, pool: stack.pool, store, models, settings, inbound };
const taskQueue = `${tag}-events`;
// Workers in processes of their own, as deployed (the load generator and the producers' ingress
// stay here), or in this process with --workers 0 (then per-event starts are eager, as in `mldeploy dev`).
const children = await Promise.all(
  Array.from({ length: workerProcesses }, () =>
    spawnWorker({
      DATABASE_URL: stack.databaseUrl,
      ...(server ? { TEMPORAL_ADDRESS: server.address } : {}),
      MLDEPLOY_TASK_QUEUE: taskQueue,
      MLDEPLOY_ROUTING_FILE: routingFile,
      MLDEPLOY_STREAM_NAMESPACE: tag,
      MLDEPLOY_WORKER_METRICS_PORT: '0',
      MLDEPLOY_SDK_METRICS_PORT: '0',
    }),
  ),
);
const ingress = new EventIngress({
  client,
  eagerClient: workerProcesses === 0 ? eagerClient : undefined,
  taskQueue,
  namespace: tag,
  routingFile,
  backend: await settings.backend(),
  inbound,
  waitMs: 120_000,
});
const workers: Worker[] =
  workerProcesses > 0
    ? []
    : [
        await createEventWorker(deps, taskQueue, { workflowsPath: WORKFLOWS_PATH }),
        await createPartitionActivityWorker(deps, taskQueue),
        ...(await createConsumerWorkers(deps, await selectConsumerQueues(routingFile, []))),
      ];
const running = workers.map((w) => w.run());
const workerPids = workerProcesses > 0 ? children.map((c) => c.pid!) : [process.pid];
const workersCpu = () => workerPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
// The PostgreSQL server's postmaster: the parent of the backend serving this connection.
const postmaster = Number(statFields((await stack.pool.query('SELECT pg_backend_pid() AS pid')).rows[0].pid)[1]);

async function floor(events: number) {
  const route = routing.events.ride_started;
  const loaded = await Promise.all(route.consumers.map((c) => models.resolve(c.model)));
  const latencies: number[] = [];
  const started = performance.now();
  for (let i = 0; i < events; i++) {
    const t0 = performance.now();
    const outcomes: ConsumerOutcome[] = [];
    for (let k = 0; k < loaded.length; k++) {
      const { predictions } = await loaded[k].predict([ride(i)]);
      outcomes.push({ consumer: route.consumers[k].name, status: 'ok', prediction: predictions[0]!, model: { name: loaded[k].name, version: loaded[k].version } });
    }
    decide({ id: String(i), type: 'ride_started' }, route.decision, outcomes, new Date());
    latencies.push(performance.now() - t0);
  }
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { rate: events / elapsed, p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99) };
}

/** History events of every workflow run on the benchmark's task queue so far (closed runs included). */
async function historyEvents(): Promise<number> {
  let total = 0;
  for await (const wf of client.workflow.list({ query: `TaskQueue = "${taskQueue}"` })) total += wf.historyLength;
  return total;
}

/** Rows inserted into the streaming tables so far and their size: what each event costs PostgreSQL to store. */
async function streamTables(): Promise<{ rows: number; bytes: number }> {
  const { rows } = await stack.pool.query(
    `SELECT coalesce(sum(n_tup_ins), 0)::float8 AS rows, coalesce(sum(pg_total_relation_size(relid)), 0)::float8 AS bytes
     FROM pg_stat_user_tables WHERE relname IN ('inbound_events', 'stream_records')`,
  );
  return { rows: rows[0].rows, bytes: rows[0].bytes };
}

async function atRate(rate: number, label: string) {
  const total = Math.round(rate * seconds);
  const latencies: number[] = [];
  let done = 0;
  let failed = 0;
  const backlog: Array<[number, number]> = [];
  const pending: Promise<void>[] = [];
  const historyBefore = await historyEvents();
  const tablesBefore = await streamTables();
  const cpuBefore = { server: server?.pid ? cpuSeconds(server.pid) : NaN, bench: cpuSeconds(process.pid), workers: workersCpu(), postgres: postgresCpuSeconds(postmaster) };
  const t0 = performance.now();
  const sampler = setInterval(() => backlog.push([(performance.now() - t0) / 1000, pending.length - done - failed]), 250);
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const sent = performance.now();
    const id = `${label}-${i}`;
    pending.push(
      (async () => {
        try {
          const r = await ingress.emit({ id, type: 'ride_started', payload: { ride: ride(i), ride_id: i } }, { wait: true, waitMs: 120_000 });
          if (r.status !== 'done') throw new Error(`event ${id}: no decision in 120 s`);
          latencies.push(performance.now() - sent);
          done++;
        } catch {
          failed++;
        }
      })(),
    );
  }
  const arrivalsEnd = (performance.now() - t0) / 1000;
  const backlogAtEnd = pending.length - done - failed;
  await Promise.all(pending);
  clearInterval(sampler);
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const cpuMsPerEvent = (pid: number | undefined, before: number) => (pid ? ((cpuSeconds(pid) - before) * 1000) / total : NaN);
  const serverCpuMs = cpuMsPerEvent(server?.pid, cpuBefore.server);
  const processCpuMs = cpuMsPerEvent(process.pid, cpuBefore.bench);
  const workersCpuMs = ((workersCpu() - cpuBefore.workers) * 1000) / total;
  const postgresCpuMs = ((postgresCpuSeconds(postmaster) - cpuBefore.postgres) * 1000) / total;
  // Visibility lags the histories a little: give it a moment before counting.
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const historyPerEvent = ((await historyEvents()) - historyBefore) / Math.max(1, done);
  const tablesAfter = await streamTables();
  const rowsPerEvent = (tablesAfter.rows - tablesBefore.rows) / Math.max(1, done);
  const bytesPerEvent = (tablesAfter.bytes - tablesBefore.bytes) / Math.max(1, done);
  return {
    rate,
    serverCpuMs,
    processCpuMs,
    workersCpuMs,
    postgresCpuMs,
    historyPerEvent,
    rowsPerEvent,
    bytesPerEvent,
    sustained: done / elapsed,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    failed,
    backlogAtEnd,
    backlogSlope: slope(backlog.filter(([t]) => t >= arrivalsEnd / 4 && t <= arrivalsEnd)),
  };
}

say(`mode: ${mode}; worker processes: ${workerProcesses === 0 ? 'none (workers in this process)' : workerProcesses}`);
const f = await floor(2_000);
say(
  `floor (3 model calls + decision in-process, no Temporal): ${f.rate.toFixed(0)} events/s, latency p50 ${f.p50.toFixed(3)} ms, p95 ${f.p95.toFixed(3)} ms, p99 ${f.p99.toFixed(3)} ms`,
);
// Warm up the workers (model loads, workflow cache, gRPC channels).
await atRate(20, `${tag}-warmup`).catch(() => {});
const results = [];
for (const rate of rates) {
  const startedAt = new Date();
  const r = await atRate(rate, `${tag}-r${rate}`);
  results.push(r);
  const holds = r.p95 < 250 && r.failed === 0 && r.backlogSlope < 0.5 && r.sustained >= rate * 0.95;
  say(
    `${rate} events/s for ${seconds} s: sustained ${r.sustained.toFixed(1)} events/s, latency p50 ${r.p50.toFixed(0)} ms (${(r.p50 / f.p50).toFixed(0)}x floor), ` +
      `p95 ${r.p95.toFixed(0)} ms (${(r.p95 / f.p95).toFixed(0)}x), p99 ${r.p99.toFixed(0)} ms (${(r.p99 / f.p99).toFixed(0)}x), ` +
      `backlog ${r.backlogSlope >= 0 ? '+' : ''}${r.backlogSlope.toFixed(2)} events/s (${r.backlogAtEnd} waiting when arrivals stopped), failed ${r.failed}; ` +
      `CPU per event: Temporal server ${r.serverCpuMs.toFixed(2)} ms, ${workerProcesses > 0 ? `worker processes ${r.workersCpuMs.toFixed(2)} ms, load generator + ingress ${r.processCpuMs.toFixed(2)} ms` : `this process (workers + load generator) ${r.processCpuMs.toFixed(2)} ms`}, PostgreSQL ${r.postgresCpuMs.toFixed(2)} ms; ` +
      `Temporal history events per event ${r.historyPerEvent.toFixed(2)}; PostgreSQL rows per event ${r.rowsPerEvent.toFixed(2)} (${r.bytesPerEvent.toFixed(0)} bytes, indexes included); sustained rate / floor ${(r.sustained / f.rate).toFixed(3)} → ${holds ? 'holds' : 'does not hold'}`,
  );
  if (mode === 'batched') say(`  where partition 0's time went:\n${(await partitionTimeline(client, partitionWorkflowId(tag, 'ride_started', 0), startedAt)).join('\n')}`);
}
const held = results.filter((r) => r.p95 < 250 && r.failed === 0 && r.backlogSlope < 0.5 && r.sustained >= r.rate * 0.95).map((r) => r.rate);
if (server?.pid) say(`Temporal dev server peak RSS: ${peakRssMiB(server.pid).toFixed(0)} MiB`);
say(`highest rate that holds (p95 < 250 ms, no backlog growth): ${held.length ? `${Math.max(...held)} events/s` : 'none of those tried'}`);
const sustained = results.filter((r) => r.failed === 0 && r.backlogSlope < 0.5 && r.sustained >= r.rate * 0.95).map((r) => r.rate);
say(`highest rate sustained (no backlog growth, whatever the latency): ${sustained.length ? `${Math.max(...sustained)} events/s` : 'none of those tried'}`);

ingress.close();
for (const w of workers) w.shutdown();
await Promise.all(children.map(stopProcess));
await Promise.all(running);
await models.release();
await (await settings.backend()).close();
await inbound.close();
await connection.close();
await native.close();
await stack.close();
await server?.stop();
fs.rmSync(dir, { recursive: true, force: true });
fs.rmSync(serverDir, { recursive: true, force: true });
