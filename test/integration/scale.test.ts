// Scaling out: three `mldeploy worker` processes on one task queue share one batch run (each
// serving its own Prometheus endpoints: mldeploy's registry and the Temporal SDK's), and
// share the streaming fan-out's event workflows and consumer predictions.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitEvent } from '../../src/streaming/emit.ts';
import { streamingSettings } from '../../src/streaming/settings.ts';
import { startBatchRun } from '../../src/batch/client.ts';
import { freePort } from '../../src/stack/ports.ts';
import { openTestEnv, registerExample, uniqueName, type TestEnv } from '../helpers.ts';
import { ridesTable, spawnWorker, type WorkerProcess } from './batch-support.ts';
import { inParallel, readAll, registerRideModels, ride, rideRoute } from './stream-env.ts';
import { RIDE_COLUMNS } from '../../src/demo.ts';

let env: TestEnv;
let model: string;
beforeAll(async () => {
  env = await openTestEnv();
  model = (await registerExample(env, 'trip-duration')).name;
});
afterAll(async () => env.close());

interface MetricsWorker extends WorkerProcess {
  metricsPort: number;
  sdkMetricsPort: number;
}

/** A worker process with metrics endpoints on ports of its own, and any other settings. */
async function spawnMetricsWorker(taskQueue: string, settings: Record<string, string> = {}): Promise<MetricsWorker> {
  const metricsPort = await freePort();
  const sdkMetricsPort = await freePort();
  const vars: Record<string, string> = { ...settings, MLDEPLOY_WORKER_METRICS_PORT: String(metricsPort), MLDEPLOY_SDK_METRICS_PORT: String(sdkMetricsPort) };
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  Object.assign(process.env, vars);
  // spawnWorker copies process.env when it spawns, before its first await.
  const started = spawnWorker(env, taskQueue);
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  return { ...(await started), metricsPort, sdkMetricsPort };
}

async function stopAll(workers: WorkerProcess[]): Promise<Array<number | null>> {
  for (const worker of workers) worker.child.kill('SIGTERM');
  return Promise.all(workers.map((w) => w.exited));
}

async function scrape(port: number, route = '/metrics'): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${route}`);
  return { status: res.status, text: await res.text() };
}

/** The value of one sample line `name{labels} value` whose labels include every given pair. */
function sample(text: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && wanted.every((w) => l.includes(w)));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('three worker processes', () => {
  it('share one batch run with many small chunks, and each reports its part on /metrics', async () => {
    const rows = 30_000;
    const { view } = await ridesTable(env.pool, { '2024-01': rows });
    const taskQueue = uniqueName('tq');
    const workers = await Promise.all([spawnMetricsWorker(taskQueue), spawnMetricsWorker(taskQueue), spawnMetricsWorker(taskQueue)]);
    try {
      const name = uniqueName('job');
      const handle = await startBatchRun(env.client, taskQueue, {
        name,
        model: `${model}@production`,
        source: { table: view, ...RIDE_COLUMNS },
        window: { from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00Z' },
        chunkSize: 500,
        parallelism: 6,
      });
      const summary = await handle.result();
      expect(summary).toMatchObject({ status: 'succeeded', rowsScored: rows, chunks: 60 });
      const { rows: counts } = await env.pool.query('SELECT count(*)::int AS n, count(DISTINCT entity_id)::int AS distinct_ids FROM predictions WHERE job = $1', [name]);
      expect(counts[0]).toEqual({ n: rows, distinct_ids: rows });

      const { rows: scorers } = await env.pool.query('SELECT scored_by, count(*)::int AS n FROM batch_chunks WHERE run_id = $1 GROUP BY scored_by', [summary.runId]);
      const chunksByPid = new Map(scorers.map((r) => [Number(String(r.scored_by).split(':').pop()), r.n as number]));
      for (const worker of workers) expect(chunksByPid.get(worker.child.pid!), `chunks scored by pid ${worker.child.pid}`).toBeGreaterThan(0);
      expect([...chunksByPid.keys()].sort()).toEqual(workers.map((w) => w.child.pid!).sort());

      let scoredOnMetrics = 0;
      for (const worker of workers) {
        expect(await scrape(worker.metricsPort, '/healthz')).toEqual({ status: 200, text: '{"status":"RUNNING"}' });
        const { status, text } = await scrape(worker.metricsPort);
        expect(status).toBe(200);
        const labels = { job: name, model: summary.model.name, version: String(summary.model.version) };
        const scored = sample(text, 'mldeploy_batch_rows_scored_total', labels);
        // Each process counts the chunks it committed (a retried chunk would count twice).
        expect(scored).toBeGreaterThanOrEqual(500 * chunksByPid.get(worker.child.pid!)!);
        scoredOnMetrics += scored;
        expect(sample(text, 'mldeploy_inference_duration_seconds_count', { lane: 'batch', model: summary.model.name })).toBeGreaterThan(0);
        expect(text).toContain('mldeploy_process_process_resident_memory_bytes');

        const sdk = await scrape(worker.sdkMetricsPort);
        expect(sdk.status).toBe(200);
        expect(sdk.text).toMatch(/^temporal_activity_execution_latency\w*\{.*task_queue="[^"]+"/m);
        expect(sdk.text).toContain(`task_queue="${taskQueue}"`);
      }
      expect(scoredOnMetrics).toBeGreaterThanOrEqual(rows);
    } finally {
      expect(await stopAll(workers)).toEqual([0, 0, 0]);
    }
  });

  it('share the streaming fan-out: every process runs event workflows and consumer predictions', async () => {
    const models = await registerRideModels(env);
    const tag = uniqueName('scale');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-scale-'));
    const routingFile = path.join(dir, 'routing.json');
    fs.writeFileSync(routingFile, JSON.stringify({ events: { ride_started: rideRoute(models, tag) } }));
    const taskQueue = `${tag}-events`;
    const settings = { MLDEPLOY_ROUTING_FILE: routingFile, MLDEPLOY_STREAM_BACKEND: 'postgres', MLDEPLOY_STREAM_NAMESPACE: tag };
    const workers = await Promise.all([0, 1, 2].map(() => spawnMetricsWorker(taskQueue, settings)));
    const backend = await streamingSettings({ routingFile, backend: 'postgres', namespace: tag, natsUrl: '127.0.0.1:4222' }, env.pool).backend();
    try {
      const ids = Array.from({ length: 90 }, (_, i) => `${tag}-ride-${i}`);
      const results = await inParallel(ids, 30, (id) =>
        emitEvent(env.client, { id, type: 'ride_started', payload: { ride: ride(ids.indexOf(id)), ride_id: id } }, { taskQueue, wait: true, waitMs: 60_000 }),
      );
      expect(results.filter((r) => r.status === 'done').length).toBe(ids.length);
      expect((await readAll(backend, 'decisions')).length).toBe(ids.length);
      expect((await readAll(backend, 'predictions')).length).toBe(3 * ids.length);

      // Which process ran each event workflow task and each consumer's prediction (worker identity is pid@host).
      const workflowPids = new Set<number>();
      const activityPids = new Set<number>();
      for (const result of results) {
        const history = await env.client.workflow.getHandle(result.workflowId).fetchHistory();
        for (const event of history.events ?? []) {
          const identity = event.workflowTaskStartedEventAttributes?.identity ?? event.activityTaskStartedEventAttributes?.identity;
          if (!identity) continue;
          (event.activityTaskStartedEventAttributes ? activityPids : workflowPids).add(Number(identity.split('@')[0]));
        }
      }
      const pids = workers.map((w) => w.child.pid!).sort();
      expect([...activityPids].sort()).toEqual(pids);
      expect([...workflowPids].sort()).toEqual(pids);
    } finally {
      await backend.close();
      fs.rmSync(dir, { recursive: true, force: true });
      expect(await stopAll(workers)).toEqual([0, 0, 0]);
    }
  });
});
