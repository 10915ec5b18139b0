// Drift thresholds of monitors and a batch job's own alert webhook, on a real Temporal dev
// server and PostgreSQL: `mldeploy monitor create --psi-threshold --drift-share` stores the
// thresholds with the monitor and its runs judge by them (shifted traffic stable under a high
// threshold, steady traffic drifted under a tiny one); a batch job's drift.webhook receives
// its drifted run's alert instead of the default webhook, and a job whose webhook host is not
// allowed fails before scoring with one clear error. Bad threshold arguments give one error line.
// The runs show in the worker's metrics and in the shipped Grafana dashboard's monitor panels.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelCache } from '../../src/registry/runtime.ts';
import { metricsRegistry } from '../../src/metrics.ts';
import { startBatchRun } from '../../src/batch/client.ts';
import { DataPlane } from '../../src/inference/data-plane.ts';
import { RIDE_COLUMNS } from '../../src/demo.ts';
import type { DriftAlert } from '../../src/monitoring/alerts.ts';
import type { DriftReport } from '../../src/monitoring/drift.ts';
import { openTestEnv, registerExample, startTestWorker, uniqueName, type TestEnv } from '../helpers.ts';
import { ridesTable } from './batch-support.ts';
import { runCli } from './cli-support.ts';
import { profileJanuary, shiftMarch, triggerMonitorRun } from './monitoring-support.ts';
import { waitFor } from './serve-support.ts';

const ROWS = 1_500;

let env: TestEnv;
let worker: Awaited<ReturnType<typeof startTestWorker>>;
let receiver: http.Server;
let hooks: { global: string; job: string };
const received: Array<{ path: string; body: DriftAlert }> = [];
let lenient: { name: string; version: number };
let strict: { name: string; version: number };
let batched: { name: string; version: number };
let view: string;
const monitors: string[] = [];

const mldeploy = (args: string[]) =>
  runCli(args, {
    ...process.env,
    DATABASE_URL: env.databaseUrl,
    TEMPORAL_ADDRESS: env.temporalAddress,
    MLDEPLOY_TASK_QUEUE: worker.taskQueue,
    MLDEPLOY_CALLBACK_HOSTS: '127.0.0.1',
    MLDEPLOY_LOG_LEVEL: 'warn',
  });

/** A month of rides' model fields, scored, logged as the web service's sampler logs them (now). */
async function logTraffic(model: { name: string; version: number }, month: string): Promise<void> {
  const { rows } = await env.pool.query(
    `SELECT "PULocationID", "DOLocationID", trip_distance FROM ${view} WHERE lpep_pickup_datetime >= $1::timestamptz AND lpep_pickup_datetime < $1::timestamptz + interval '1 month' ORDER BY 1, 2, 3`,
    [`${month}-01T00:00:00Z`],
  );
  const models = new ModelCache(env.store, 1);
  const { predictions } = await new DataPlane({ lane: 'cli' }).many(await models.get(model), rows);
  await models.release();
  const entries = rows.map((features, i) => ({
    request_id: uniqueName('req'),
    record_index: 0,
    model_name: model.name,
    model_version: model.version,
    features,
    prediction: predictions[i],
  }));
  await env.pool.query(
    `INSERT INTO prediction_log (request_id, record_index, model_name, model_version, features, prediction, predicted_at, source, sampled)
     SELECT request_id, record_index, model_name, model_version, features, prediction, now(), 'web', true
     FROM jsonb_to_recordset($1::jsonb) AS r(request_id text, record_index integer, model_name text, model_version integer, features jsonb, prediction double precision)`,
    [JSON.stringify(entries)],
  );
}

const storedReport = async (runId: string) => (await env.pool.query('SELECT drift FROM monitor_runs WHERE run_id = $1', [runId])).rows[0].drift as DriftReport;

beforeAll(async () => {
  env = await openTestEnv();
  receiver = http.createServer((req, res) => {
    let text = '';
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body: JSON.parse(text) });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  hooks = { global: `${base}/global`, job: `${base}/job` };

  [lenient, strict, batched] = await Promise.all([registerExample(env, 'trip-duration'), registerExample(env, 'trip-duration'), registerExample(env, 'trip-duration')]);
  const tables = await ridesTable(env.pool, { '2024-01': 5_000, '2024-02': ROWS, '2024-03': ROWS });
  view = tables.view;
  await shiftMarch(env.pool, tables.table);
  await profileJanuary(env, view, [lenient, strict, batched]);
  worker = await startTestWorker(env, uniqueName('tq'), { monitoring: { publicUrl: 'http://reports.example', alertWebhookUrl: hooks.global, alertHosts: ['127.0.0.1'] } });
}, 120_000);

afterAll(async () => {
  for (const id of monitors) await mldeploy(['monitor', 'delete', id]);
  await worker?.stop();
  await new Promise((resolve) => receiver?.close(resolve));
  await env?.close();
});

describe('drift thresholds of monitors', () => {
  it('a monitor created with --psi-threshold and --drift-share stores them and its runs judge by them', async () => {
    const created = await mldeploy(['monitor', 'create', `${lenient.name}@production`, '--every', '1h', '--psi-threshold', '5', '--drift-share', '1']);
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ monitorId: `monitor-${lenient.name}-prediction-log`, thresholds: { psi: 5, share: 1 } });
    monitors.push(`monitor-${lenient.name}-prediction-log`);
    const tight = await mldeploy(['monitor', 'create', `${strict.name}@production`, '--every', '1h', '--psi-threshold', '1e-6']);
    expect(tight.code).toBe(0);
    expect(JSON.parse(tight.stdout)).toMatchObject({ thresholds: { psi: 1e-6, share: 0.5 } });
    monitors.push(`monitor-${strict.name}-prediction-log`);
    const listed = JSON.parse((await mldeploy(['monitor', 'list', '--json'])).stdout) as Array<{ monitorId: string; thresholds: unknown }>;
    expect(listed.find((m) => m.monitorId === monitors[0])?.thresholds).toEqual({ psi: 5, share: 1 });

    // Shifted traffic (the default thresholds flag it: see monitoring-monitor.test.ts) under PSI 5: stable.
    await logTraffic(lenient, '2024-03');
    const shifted = await triggerMonitorRun(env.client, env.pool, monitors[0], [lenient.name]);
    expect(shifted.result).toMatchObject({ status: 'finished', rows: ROWS, drift: { drifted: false, driftedShare: 0, features: [] } });
    expect(shifted.attribute).toBe('stable');
    const lenientReport = await storedReport(shifted.result.runId);
    expect(lenientReport.thresholds).toEqual({ psi: 5, share: 1 });
    expect(lenientReport.features.find((f) => f.name === 'trip_distance')!.psi).toBeGreaterThan(0.2);

    // Traffic like the reference under PSI 1e-6: every feature moved a little, so drifted.
    await logTraffic(strict, '2024-02');
    const steady = await triggerMonitorRun(env.client, env.pool, monitors[1], [strict.name]);
    expect(steady.result).toMatchObject({ status: 'finished', rows: ROWS, drift: { drifted: true, driftedShare: 1 } });
    expect(steady.attribute).toBe('drifted');
    const strictReport = await storedReport(steady.result.runId);
    expect(strictReport.thresholds).toEqual({ psi: 1e-6, share: 0.5 });
    expect(Math.max(...strictReport.features.map((f) => f.psi))).toBeLessThan(0.2);
    // Its alert went to the default webhook (the monitor has none of its own).
    await waitFor(async () => received.some((r) => r.body.runId === steady.result.runId), 'the alert');
    expect(received.find((r) => r.body.runId === steady.result.runId)!.path).toBe('/global');

    // The worker's /metrics (its process registry) counts both runs for the dashboard's monitor panels.
    const metrics = await metricsRegistry.metrics();
    const series = (name: string, labels: string) => metrics.split('\n').find((line) => line.startsWith(`${name}{${labels}}`));
    expect(series('mldeploy_monitor_runs_total', `monitor="${monitors[0]}",model="${lenient.name}",status="finished",verdict="stable"`)).toMatch(/ 1$/);
    expect(series('mldeploy_monitor_runs_total', `monitor="${monitors[1]}",model="${strict.name}",status="finished",verdict="drifted"`)).toMatch(/ 1$/);
    expect(series('mldeploy_monitor_run_rows', `monitor="${monitors[0]}",model="${lenient.name}"`)).toMatch(new RegExp(` ${ROWS}$`));
    const windowEnd = Number(series('mldeploy_monitor_run_window_end_seconds', `monitor="${monitors[1]}",model="${strict.name}"`)!.split(' ')[1]);
    expect(windowEnd).toBe(Date.parse(steady.result.window.to) / 1000);
    expect(series('mldeploy_drift_run_drifted', `job="${monitors[1]}",model="${strict.name}"`)).toMatch(/ 1$/);
  }, 240_000);

  it('the shipped Grafana dashboard has monitor run panels, filtered by a monitor variable', () => {
    const dashboard = JSON.parse(fs.readFileSync('docs/grafana-dashboard.json', 'utf8')) as {
      panels: Array<{ type: string; title: string; targets?: Array<{ expr: string }> }>;
      templating: { list: Array<{ name: string; definition?: string }> };
    };
    expect(dashboard.templating.list.find((v) => v.name === 'monitor')?.definition).toBe('label_values(mldeploy_monitor_runs_total, monitor)');
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).filter((e) => e.includes('$monitor'));
    for (const metric of [
      'mldeploy_monitor_runs_total',
      'mldeploy_monitor_run_rows',
      'mldeploy_monitor_run_window_end_seconds',
      'mldeploy_drift_feature_psi',
      'mldeploy_drift_run_drifted',
    ]) {
      expect(
        exprs.some((e) => e.includes(metric)),
        metric,
      ).toBe(true);
    }
  });

  it('bad threshold arguments give one error line and exit 1', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--psi-threshold', '0'], /--psi-threshold must be a number above 0 and at most 10 .*got "0"/],
      [['--psi-threshold', 'high'], /--psi-threshold must be a number above 0 and at most 10 .*got "high"/],
      [['--psi-threshold', '11'], /--psi-threshold must be/],
      [['--drift-share', '1.5'], /--drift-share must be a share above 0 and at most 1 .*got "1.5"/],
      [['--drift-share', '-0.5'], /--drift-share must be/],
    ];
    for (const [flags, message] of cases) {
      const result = await mldeploy(['monitor', 'create', `${batched.name}@production`, '--every', '1h', ...flags]);
      expect({ flags, code: result.code }).toEqual({ flags, code: 1 });
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect((await env.pool.query('SELECT 1 FROM monitors WHERE model_name = $1', [batched.name])).rowCount).toBe(0);
  }, 120_000);
});

describe("a batch job's own drift webhook", () => {
  const marchJob = (drift: Record<string, unknown>) => ({
    name: uniqueName('job-hook'),
    model: `${batched.name}@production`,
    source: { table: view, ...RIDE_COLUMNS },
    window: { from: '2024-03-01T00:00:00Z', to: '2024-04-01T00:00:00Z' },
    drift,
  });

  it('a drifted run alerts the webhook its job names, not the default one', async () => {
    const summary = await (await startBatchRun(env.client, worker.taskQueue, marchJob({ webhook: hooks.job }))).result();
    expect(summary.drift).toMatchObject({ drifted: true });
    await waitFor(async () => (await env.pool.query('SELECT 1 FROM drift_alerts WHERE run_id = $1 AND sent_at IS NOT NULL', [summary.runId])).rowCount === 1, 'the alert');
    const alerts = received.filter((r) => r.body.runId === summary.runId);
    expect(alerts.map((r) => r.path)).toEqual(['/job']);
    expect(alerts[0].body).toMatchObject({ kind: 'batch', job: summary.job, idempotencyKey: `drift:${summary.runId}` });
    expect((await env.pool.query('SELECT url FROM drift_alerts WHERE run_id = $1', [summary.runId])).rows[0].url).toBe(hooks.job);
  }, 120_000);

  it('a job whose webhook host is not allowed fails before scoring, with one clear error', async () => {
    const job = marchJob({ webhook: 'http://elsewhere.example/hook' });
    const handle = await startBatchRun(env.client, worker.taskQueue, job);
    const failure = await handle.result().catch((e) => e);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(String(failure.cause?.cause?.message ?? failure.cause?.message)).toMatch(/drift\.webhook: webhook host elsewhere\.example is not in MLDEPLOY_CALLBACK_HOSTS/);
    // Non-retryable: one attempt, not a retry loop.
    const starts = (await handle.fetchHistory()).events!.filter((e) => e.activityTaskStartedEventAttributes);
    expect(starts.every((e) => Number(e.activityTaskStartedEventAttributes!.attempt) === 1)).toBe(true);
    expect((await env.pool.query('SELECT 1 FROM batch_runs WHERE job = $1', [job.name])).rowCount).toBe(0);
    await expect(startBatchRun(env.client, worker.taskQueue, marchJob({ webhook: 'ftp://127.0.0.1/hook' }))).rejects.toThrow(
      /drift\.webhook: must be an http:\/\/ or https:\/\/ URL/,
    );
  }, 120_000);
});
