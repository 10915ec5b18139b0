// The drift report as users see it: `mldeploy models profile` builds the reference, a shifted
// month is scored, the web service serves the report behind its token, headless Chromium
// shows the verdict and one chart per feature without console errors, `mldeploy report`
// writes HTML and PNG, and bad arguments get one clear error line.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium } from 'playwright-core';
import { startBatchRun } from '../../src/batch/client.ts';
import { RIDE_COLUMNS } from '../../src/demo.ts';
import { CHROMIUM_ARGS } from '../../src/monitoring/png.ts';
import { openTestEnv, registerExample, startTestWorker, uniqueName, type TestEnv } from '../helpers.ts';
import { ridesTable } from './batch-support.ts';
import { serveConfig, startServer, type TestServer } from './serve-support.ts';

const exec = promisify(execFile);
const TOKEN = 'monitoring-report-token';
const OUT = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-report-'));

let env: TestEnv;
let server: TestServer;
let runId: string;
let unprofiledRunId: string;
let modelRef: string;
let view: string;

async function mldeploy(args: string[]) {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['bin/mldeploy.js', ...args], {
      env: { ...process.env, DATABASE_URL: env.databaseUrl, TEMPORAL_ADDRESS: env.temporalAddress, MLDEPLOY_LOG_LEVEL: 'warn', MLDEPLOY_PUBLIC_URL: 'http://reports.example' },
      timeout: 90_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const job = (model: string, month: '01' | '03') => ({
  name: uniqueName('report'),
  model: `${model}@production`,
  source: { table: view, ...RIDE_COLUMNS, actualColumn: 'duration' },
  window: month === '01' ? { from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00Z' } : { from: '2024-03-01T00:00:00Z', to: '2024-04-01T00:00:00Z' },
  chunkSize: 2_000,
});

beforeAll(async () => {
  env = await openTestEnv();
  const model = await registerExample(env, 'trip-duration');
  const unprofiled = await registerExample(env, 'trip-duration');
  modelRef = `${model.name}@${model.version}`;
  const tables = await ridesTable(env.pool, { '2024-01': 5_000, '2024-03': 5_000 });
  view = tables.view;
  await env.pool.query(
    `UPDATE ${tables.table} SET trip_distance = trip_distance * 1.5, "PULocationID" = ("PULocationID" * 7) % 265 + 1 WHERE lpep_pickup_datetime >= '2024-03-01'`,
  );
  // Two rows the model rejects, for the "rejected rows by reason" table.
  await env.pool.query(
    `UPDATE ${tables.table} SET trip_distance = NULL WHERE ride_id IN (SELECT ride_id FROM ${tables.table} WHERE lpep_pickup_datetime >= '2024-03-01' ORDER BY ride_id LIMIT 2)`,
  );

  const profiled = await mldeploy(['models', 'profile', modelRef, '--source', view, '--from', '2024-01', '--to', '2024-02', '--actual-column', 'duration']);
  expect(profiled.stderr).toBe('');
  const summary = JSON.parse(profiled.stdout);
  expect(summary).toMatchObject({ model: modelRef, rows: 5_000 });
  expect(summary.bytes).toBeLessThan(16_384);

  const worker = await startTestWorker(env);
  try {
    runId = (await (await startBatchRun(env.client, worker.taskQueue, job(model.name, '03'))).result()).runId;
    unprofiledRunId = (await (await startBatchRun(env.client, worker.taskQueue, job(unprofiled.name, '01'))).result()).runId;
  } finally {
    await worker.stop();
  }
  server = await startServer(env, serveConfig({ apiToken: TOKEN, defaultModel: `${model.name}@production` }));
});
afterAll(async () => {
  await server?.close();
  await env?.close();
});

describe('drift report', () => {
  it('is served at GET /v1/runs/{runId}/report behind the token; unknown runs and runs without a profile are 404 with a reason', async () => {
    const url = `/v1/runs/${runId}/report`;
    expect((await server.app.inject({ url })).statusCode).toBe(401);
    const page = await server.app.inject({ url, headers: { authorization: `Bearer ${TOKEN}` } });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('Drift detected');
    expect(page.body).not.toMatch(/<script|(src|href)="(https?:)?\/\//); // self-contained: no scripts, no external assets
    expect(page.body).toContain('trip_distance is null');

    const unknown = await server.app.inject({ url: '/v1/runs/no-such-run/report', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error).toMatch(/no batch or monitor run no-such-run/);
    const none = await server.app.inject({ url: `/v1/runs/${unprofiledRunId}/report`, headers: { authorization: `Bearer ${TOKEN}` } });
    expect(none.statusCode).toBe(404);
    expect(none.json().error).toMatch(/no reference profile/);
  });

  it('opens in headless Chromium: verdict, one chart per feature, no console errors', async () => {
    const address = await server.app.listen({ port: 0, host: '127.0.0.1' });
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
    try {
      const context = await browser.newContext({ extraHTTPHeaders: { authorization: `Bearer ${TOKEN}` }, viewport: { width: 1240, height: 900 } });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
      page.on('pageerror', (e) => problems.push(e.message));
      const response = await page.goto(`${address}/v1/runs/${runId}/report`);
      expect(response?.status()).toBe(200);
      expect(await page.locator('#verdict').textContent()).toBe('Drift detected');
      expect(await page.locator('figure[data-feature]').count()).toBe(2);
      expect(await page.locator('figure[data-feature] svg rect.current').count()).toBeGreaterThan(10);
      expect(await page.locator('figure[data-prediction]').count()).toBe(1);
      // Features sorted by drift: the larger PSI first.
      const names = await page.locator('table.features tr td:first-child').allTextContents();
      const psis = (await page.locator('table.features tr td:nth-child(3)').allTextContents()).map(Number);
      expect(names.sort()).toEqual(['PU_DO', 'trip_distance']);
      expect(psis[0]).toBeGreaterThanOrEqual(psis[1]);
      const screenshot = path.join(OUT, 'report.png');
      await page.screenshot({ path: screenshot, fullPage: true });
      expect(fs.statSync(screenshot).size).toBeGreaterThan(10_000);
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  });

  it('mldeploy report writes the HTML and a PNG', async () => {
    const html = path.join(OUT, 'cli.html');
    const png = path.join(OUT, 'cli.png');
    const result = await mldeploy(['report', runId, '--out', html, '--png', png]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ runId, html, png, url: `http://reports.example/v1/runs/${runId}/report` });
    expect(fs.readFileSync(html, 'utf8')).toContain('id="verdict"');
    expect(fs.readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
  });

  it('models profile also builds from a batch run and from a CSV file, and models register --reference from a CSV file', async () => {
    const other = await registerExample(env, 'trip-duration');
    const fromRun = await mldeploy(['models', 'profile', `${other.name}@${other.version}`, '--run', runId]);
    expect(fromRun.code).toBe(0);
    expect(JSON.parse(fromRun.stdout)).toMatchObject({ rows: 5_000, source: `batch run ${runId}` });
    const stored = await env.pool.query('SELECT profile FROM model_profiles WHERE name = $1', [other.name]);
    expect(stored.rows[0].profile.actual).not.toBeNull(); // the run's actual column is profiled too

    const csv = path.join(OUT, 'reference.csv');
    const lines = Array.from({ length: 200 }, (_, i) => `${(i % 20) + 1},${(i % 7) + 1},${(i % 13) / 2 + 0.5},${i % 30 === 0 ? '' : 'x'}`);
    fs.writeFileSync(csv, ['PULocationID,DOLocationID,trip_distance,note', ...lines].join('\n') + '\n');
    const fromCsv = await mldeploy(['models', 'profile', `${other.name}@${other.version}`, '--csv', csv]);
    expect(fromCsv.code).toBe(0);
    const summary = JSON.parse(fromCsv.stdout);
    expect(summary).toMatchObject({ rows: 200, source: `csv ${csv}` });
    expect(summary.features.map((f: { name: string; kind: string }) => `${f.name}:${f.kind}`).sort()).toEqual(['PU_DO:categorical', 'trip_distance:numeric']);

    const name = uniqueName('registered');
    const registered = await mldeploy(['models', 'register', name, 'models/trip-duration.onnx', '--spec', 'models/trip-duration.spec.json', '--reference', csv]);
    expect(registered.code).toBe(0);
    expect(JSON.parse(registered.stdout)).toMatchObject({ name, version: 1, profile: { model: `${name}@1`, rows: 200 } });
    const noFile = await mldeploy(['models', 'register', uniqueName('registered'), 'models/trip-duration.onnx', '--reference', path.join(OUT, 'missing.csv')]);
    expect(noFile.code).toBe(1);
    expect(noFile.stderr).toMatch(/--reference: cannot read CSV file/);
  });

  it('bad arguments give one error line and exit 1', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['report', 'no-such-run'], /no batch or monitor run no-such-run/],
      [['report', unprofiledRunId], /no reference profile/],
      [['models', 'profile', modelRef, '--source', view, '--from', '2024-02', '--to', '2024-01'], /--from .* must be before --to/],
      [['models', 'profile', modelRef, '--source', view, '--from', '2024-13', '--to', '2024-14'], /--from must be a date/],
      [['models', 'profile', modelRef, '--source', view], /--source needs --from and --to/],
      [['models', 'profile', modelRef], /give exactly one of --source/],
      [['models', 'profile', modelRef, '--source', 'no_such_table', '--from', '2024-01', '--to', '2024-02'], /table no_such_table does not exist/],
      [['models', 'profile', 'no-such-model', '--csv', 'x.csv'], /no-such-model/],
      [['models', 'profile', modelRef, '--source', view, '--from', '2030-01', '--to', '2030-02'], /has no row the model can score/],
    ];
    for (const [args, message] of cases) {
      const result = await mldeploy(args);
      expect({ args, code: result.code }).toEqual({ args, code: 1 });
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});
