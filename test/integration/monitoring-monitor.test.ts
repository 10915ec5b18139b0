// Monitors of online traffic on a real web service, Temporal dev server and PostgreSQL:
// `mldeploy monitor create` makes a schedule; an hour of /predict traffic with longer trips
// and another PU/DO mix, sampled into the prediction log because the model is monitored, is
// flagged drifted when the schedule is triggered, with the search attribute, a report page
// and one drift alert to a real HTTP receiver (its first answer a 503, so the alert is
// retried under the same idempotency key). Unshifted traffic is stable; an unmonitored
// model's records are not kept. A drifted batch run alerts the default webhook. A
// prediction-stream monitor profiles the features the consumers' sampler kept. Bad
// arguments give one clear error.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelCache } from '../../src/registry/runtime.ts';
import { startBatchRun } from '../../src/batch/client.ts';
import { DataPlane } from '../../src/inference/data-plane.ts';
import { createMonitor, deleteMonitor } from '../../src/monitoring/monitors.ts';
import { idShare, StreamInputSampler } from '../../src/monitoring/sampling.ts';
import { RIDE_COLUMNS } from '../../src/demo.ts';
import type { DriftAlert } from '../../src/monitoring/alerts.ts';
import { openTestEnv, registerExample, startTestWorker, uniqueName, type TestEnv } from '../helpers.ts';
import { ridesTable } from './batch-support.ts';
import { runCli } from './cli-support.ts';
import { profileJanuary, shiftMarch, triggerMonitorRun } from './monitoring-support.ts';
import { serveConfig, startServer, waitFor, type TestServer } from './serve-support.ts';

const ROWS = 1_500;
const HOUR_MS = 3_600_000;

interface Received {
  key: string | undefined;
  body: DriftAlert;
  answered: number;
}

let env: TestEnv;
let worker: Awaited<ReturnType<typeof startTestWorker>>;
let server: TestServer;
let base: string;
let receiver: http.Server;
let hook: string;
const received: Received[] = [];
let shifted: { name: string; version: number };
let steady: { name: string; version: number };
let unmonitored: { name: string; version: number };
let unprofiled: { name: string; version: number };
let streamed: { name: string; version: number };
let view: string;

const cliEnv = () => ({
  ...process.env,
  DATABASE_URL: env.databaseUrl,
  TEMPORAL_ADDRESS: env.temporalAddress,
  MLDEPLOY_TASK_QUEUE: worker.taskQueue,
  MLDEPLOY_CALLBACK_HOSTS: '127.0.0.1',
  MLDEPLOY_LOG_LEVEL: 'warn',
});
const modelId = (m: { name: string; version: number }) => ({ name: m.name, version: m.version });
const mldeploy = (args: string[]) => runCli(args, cliEnv());

/** A month of rides as the web service receives them: the model's fields only. */
async function rides(month: string): Promise<Array<Record<string, unknown>>> {
  const { rows } = await env.pool.query(
    `SELECT "PULocationID", "DOLocationID", trip_distance FROM ${view} WHERE lpep_pickup_datetime >= $1::timestamptz AND lpep_pickup_datetime < $1::timestamptz + interval '1 month' ORDER BY 1, 2, 3`,
    [`${month}-01T00:00:00Z`],
  );
  return rows;
}

async function post(path: string, body: unknown): Promise<void> {
  const response = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`${path} answered ${response.status}: ${await response.text()}`);
}

const logged = async (model: { name: string }) =>
  Number((await env.pool.query('SELECT count(*) FROM prediction_log WHERE model_name = $1 AND sampled', [model.name])).rows[0].count);

beforeAll(async () => {
  env = await openTestEnv();
  receiver = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      // The first delivery fails: the activity is retried and the receiver sees the same key again.
      const answered = received.length === 0 ? 503 : 200;
      received.push({ key: req.headers['idempotency-key'] as string | undefined, body: JSON.parse(text), answered });
      res.writeHead(answered).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/drift`;

  [shifted, steady, unmonitored, unprofiled, streamed] = await Promise.all([
    registerExample(env, 'trip-duration'),
    registerExample(env, 'trip-duration'),
    registerExample(env, 'trip-duration'),
    registerExample(env, 'trip-duration'),
    registerExample(env, 'trip-duration'),
  ]);
  const tables = await ridesTable(env.pool, { '2024-01': 5_000, '2024-02': ROWS, '2024-03': ROWS });
  view = tables.view;
  await shiftMarch(env.pool, tables.table);
  await profileJanuary(env, view, [shifted, steady, unmonitored, streamed]);

  // The default webhook (MLDEPLOY_ALERT_WEBHOOK_URL) is the receiver too: batch runs alert there.
  worker = await startTestWorker(env, uniqueName('tq'), { monitoring: { publicUrl: 'http://reports.example', alertWebhookUrl: hook, alertHosts: ['127.0.0.1'] } });
}, 120_000);

afterAll(async () => {
  // The shifted model's monitor stays until here; its schedule would go on starting runs.
  if (shifted) await mldeploy(['monitor', 'delete', `monitor-${shifted.name}-prediction-log`]);
  await server?.close();
  await worker?.stop();
  await new Promise((resolve) => receiver?.close(resolve));
  await env?.close();
});

describe('monitor schedules over the prediction log', () => {
  it('a monitor schedule over the prediction log flags a shifted hour of /predict traffic', async () => {
    const created = await mldeploy(['monitor', 'create', `${shifted.name}@production`, '--every', '1h', '--webhook', hook]);
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ monitorId: `monitor-${shifted.name}-prediction-log`, source: 'prediction-log', every: '1h', webhookUrl: hook });
    const steadyMonitor = await mldeploy(['monitor', 'create', `${steady.name}@production`, '--every', '1h', '--source', 'prediction-log']);
    expect(steadyMonitor.code).toBe(0);
    const listed = JSON.parse((await mldeploy(['monitor', 'list', '--json'])).stdout) as Array<{ monitorId: string; every: string; next: string | null; paused: boolean }>;
    const mine = listed.find((m) => m.monitorId === `monitor-${shifted.name}-prediction-log`)!;
    expect(mine).toMatchObject({ every: '1h', paused: false });
    expect(Date.parse(mine.next!) - Date.now()).toBeLessThanOrEqual(HOUR_MS);

    // The full prediction log is off: only the monitored models' records are kept (all of them at rate 1).
    server = await startServer(env, serveConfig({ defaultModel: `${shifted.name}@production`, predictionLog: false, monitorSampleRate: 1 }));
    base = await server.app.listen({ host: '127.0.0.1', port: 0 });
    const march = await rides('2024-03');
    for (let i = 0; i < march.length; i += 50) await Promise.all(march.slice(i, i + 50).map((ride) => post('/predict', ride)));
    const february = await rides('2024-02');
    for (let i = 0; i < february.length; i += 500) {
      await post(`/v1/models/${steady.name}@production/predict`, february.slice(i, i + 500));
      await post(`/v1/models/${unmonitored.name}@production/predict`, february.slice(i, i + 500));
    }
    await waitFor(async () => (await logged(shifted)) === ROWS && (await logged(steady)) === ROWS, 'the sampled inputs');
    expect(await logged(unmonitored)).toBe(0);

    const drifted = await triggerMonitorRun(env.client, env.pool, `monitor-${shifted.name}-prediction-log`, [shifted.name, steady.name]);
    expect(drifted.result).toMatchObject({ status: 'finished', rows: ROWS, model: modelId(shifted), drift: { drifted: true, driftedShare: 1 } });
    expect(drifted.result.drift!.features.sort()).toEqual(['PU_DO', 'trip_distance']);
    expect(Date.parse(drifted.result.window.to) - Date.parse(drifted.result.window.from)).toBe(HOUR_MS);
    expect(drifted.attribute).toBe('drifted');

    // One alert for the verdict: delivered on the second attempt, both with the run's key.
    expect(drifted.result.alert).toMatchObject({ sent: true, url: hook, status: 200, repeated: false });
    expect(received.map((r) => r.answered)).toEqual([503, 200]);
    const runId = drifted.result.runId;
    for (const r of received) expect(r.key).toBe(`drift:${runId}`);
    expect(received[1].body).toMatchObject({
      type: 'mldeploy.drift',
      idempotencyKey: `drift:${runId}`,
      kind: 'monitor',
      runId,
      workflowId: drifted.workflowId,
      job: `monitor-${shifted.name}-prediction-log`,
      model: modelId(shifted),
      rows: ROWS,
      drift: { drifted: true },
      report: `http://reports.example/v1/runs/${runId}/report`,
    });
    const alerts = await env.pool.query('SELECT attempts, status, sent_at FROM drift_alerts WHERE run_id = $1', [runId]);
    expect(alerts.rows).toEqual([{ attempts: 2, status: 200, sent_at: expect.any(Date) }]);

    // The report page, by run id and by workflow id, as for a batch run.
    for (const id of [runId, drifted.workflowId]) {
      const page = await fetch(`${base}/v1/runs/${encodeURIComponent(id)}/report`);
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('Drift detected');
      expect(html).toContain(`monitor-${shifted.name}-prediction-log`);
    }

    const stable = await triggerMonitorRun(env.client, env.pool, `monitor-${steady.name}-prediction-log`, [steady.name]);
    expect(stable.result).toMatchObject({ status: 'finished', rows: ROWS, drift: { drifted: false, features: [] } });
    expect(stable.attribute).toBe('stable');
    expect(stable.result.alert).toBeUndefined();
    expect(received).toHaveLength(2);

    const deleted = await mldeploy(['monitor', 'delete', `monitor-${steady.name}-prediction-log`]);
    expect(deleted.code).toBe(0);
    await expect(env.client.schedule.getHandle(`monitor-${steady.name}-prediction-log`).describe()).rejects.toThrow(/not found/i);
    expect((await env.pool.query('SELECT 1 FROM monitors WHERE model_name = $1', [steady.name])).rowCount).toBe(0);
  }, 240_000);

  it('a drifted batch run alerts the default webhook once', async () => {
    const before = received.length;
    const handle = await startBatchRun(env.client, worker.taskQueue, {
      name: uniqueName('alerting'),
      model: `${shifted.name}@production`,
      source: { table: view, ...RIDE_COLUMNS },
      window: { from: '2024-03-01T00:00:00Z', to: '2024-04-01T00:00:00Z' },
    });
    const summary = await handle.result();
    expect(summary.drift).toMatchObject({ drifted: true });
    await waitFor(async () => (await env.pool.query('SELECT 1 FROM drift_alerts WHERE run_id = $1 AND sent_at IS NOT NULL', [summary.runId])).rowCount === 1, 'the alert');
    expect(received.slice(before).map((r) => [r.key, r.answered])).toEqual([[`drift:${summary.runId}`, 200]]);
    expect(received.at(-1)!.body).toMatchObject({
      kind: 'batch',
      runId: summary.runId,
      job: summary.job,
      rows: ROWS,
      report: `http://reports.example/v1/runs/${summary.runId}/report`,
    });
  }, 120_000);

  it("a prediction-stream monitor profiles the consumers' sampled features", async () => {
    const monitor = await createMonitor(env.pool, env.store, env.client, {
      ref: `${streamed.name}@production`,
      everyMs: HOUR_MS,
      source: 'prediction-stream',
      taskQueue: worker.taskQueue,
    });
    // What a consumer does after appending its predictions: hand the scored events to the sampler.
    const sampler = new StreamInputSampler(env.pool, 0.5);
    await sampler.monitored.refresh();
    const models = new ModelCache(env.store, 1);
    const model = await models.get(streamed);
    const march = await rides('2024-03');
    const { predictions } = await new DataPlane({ lane: 'cli' }).many(model, march);
    const events = march.map((features, i) => ({ eventId: `ride-${i}`, features, prediction: predictions[i]! }));
    const kept = events.filter((e) => idShare(`ride_started:${e.eventId}:duration`) < 0.5).length;
    expect(kept / events.length).toBeGreaterThan(0.4);
    expect(kept / events.length).toBeLessThan(0.6);
    expect(await sampler.record(model, 'duration', 'ride_started', events)).toBe(kept);
    // A retried consumer batch keeps the same events, and stores none of them twice.
    await sampler.record(model, 'duration', 'ride_started', events);
    const stored = await env.pool.query("SELECT count(*)::int AS n FROM prediction_log WHERE model_name = $1 AND source = 'stream' AND sampled", [streamed.name]);
    expect(stored.rows[0].n).toBe(kept);
    // A model without a prediction-stream monitor: nothing kept.
    expect(await new StreamInputSampler(env.pool, 1).record(await models.get(steady), 'duration', 'ride_started', events)).toBe(0);
    await models.release();

    const run = await triggerMonitorRun(env.client, env.pool, monitor.monitorId, [streamed.name]);
    expect(run.result).toMatchObject({ status: 'finished', rows: kept, drift: { drifted: true } });
    expect(run.result.drift!.features.sort()).toEqual(['PU_DO', 'trip_distance']);
    expect(run.attribute).toBe('drifted');
    expect(run.result.alert).toMatchObject({ sent: true, url: hook });
    await deleteMonitor(env.pool, env.client, monitor.monitorId);
  }, 120_000);

  it('bad arguments give one error line and exit 1', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['monitor', 'create', 'no-such-model@production', '--every', '1h'], /model no-such-model@production does not exist/],
      [['monitor', 'create', `${unprofiled.name}@production`, '--every', '1h'], /has no reference profile to monitor against: build one first with mldeploy models profile/],
      [['monitor', 'create', `${unmonitored.name}@production`, '--every', 'hourly'], /--every must be a period such as 15m, 1h or 1d/],
      [['monitor', 'create', `${unmonitored.name}@production`, '--every', '10s'], /--every must be a period .* from 1m to 31d; got "10s"/],
      [
        ['monitor', 'create', `${unmonitored.name}@production`, '--every', '1h', '--webhook', 'http://elsewhere.example/hook'],
        /webhook host elsewhere.example is not in MLDEPLOY_CALLBACK_HOSTS/,
      ],
      [['monitor', 'create', `${shifted.name}@production`, '--every', '1h'], /already has a prediction-log monitor/],
      [['monitor', 'delete', 'monitor-nope'], /no monitor monitor-nope/],
    ];
    for (const [args, message] of cases) {
      const result = await mldeploy(args);
      expect({ args, code: result.code }).toEqual({ args, code: 1 });
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    const badSource = await mldeploy(['monitor', 'create', `${unmonitored.name}@production`, '--every', '1h', '--source', 'kafka']);
    expect(badSource.code).toBe(2);
    expect(badSource.stderr).toMatch(/--source.*kafka.*prediction-log, prediction-stream/s);
    expect((await env.pool.query('SELECT 1 FROM monitors WHERE model_name = $1', [unmonitored.name])).rowCount).toBe(0);
  }, 120_000);
});
