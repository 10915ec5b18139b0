// The command line as a user runs it: `node bin/mldeploy.js …` in a child process.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../src/stack/ports.ts';
import { FIXTURES, openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';

const exec = promisify(execFile);

let env: TestEnv;
let dataDir: string;
beforeAll(async () => {
  env = await openTestEnv();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-cli-'));
  fs.chmodSync(dataDir, 0o755);
});
afterAll(async () => {
  await env.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function mldeploy(args: string[], extraEnv: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['bin/mldeploy.js', ...args], {
      env: { ...process.env, DATABASE_URL: env.databaseUrl, TEMPORAL_ADDRESS: env.temporalAddress, MLDEPLOY_DATA_DIR: dataDir, MLDEPLOY_LOG_LEVEL: 'warn', ...extraEnv },
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('mldeploy models and predict', () => {
  it('registers, lists, promotes and predicts', async () => {
    const name = uniqueName('cli-td');
    const registered = await mldeploy(['models', 'register', name, 'models/trip-duration.onnx', '--spec', 'models/trip-duration.spec.json', '--alias', 'production']);
    expect(registered.stderr).toBe('');
    expect(JSON.parse(registered.stdout)).toMatchObject({ name, version: 1, aliases: ['production'], metrics: { rmse: expect.any(Number) } });
    expect((await mldeploy(['models', 'register', name, 'models/trip-duration.onnx', '--spec', 'models/trip-duration.spec.json'])).code).toBe(0);
    expect(JSON.parse((await mldeploy(['models', 'promote', name, '2'])).stdout)).toMatchObject({ version: 2, aliases: ['production'] });
    const listed = await mldeploy(['models', 'list']);
    expect(listed.stdout).toContain(`${name}@2`);
    const shown = JSON.parse((await mldeploy(['models', 'show', `${name}@1`])).stdout);
    expect(shown.spec.derived[0].name).toBe('PU_DO');
    const predicted = await mldeploy(['predict', name, '--data', '{"PULocationID":10,"DOLocationID":50,"trip_distance":40}']);
    const out = JSON.parse(predicted.stdout);
    expect(out).toMatchObject({ model: name, version: 2, errors: [] });
    expect(out.predictions[0]).toBeGreaterThan(1);
  });

  it.each([
    ['a corrupt file', ['corrupt.onnx'], /cannot load the file as an ONNX model/],
    ['a ZipMap classifier', ['zipmap_classifier.onnx'], /zipmap': False/],
    ['a missing file', ['nope.onnx'], /cannot read model file .*nope\.onnx: ENOENT/],
  ])('rejects %s with a clear message and stores nothing', async (_title, [file], message) => {
    const name = uniqueName('cli-bad');
    const result = await mldeploy(['models', 'register', name, path.join(FIXTURES, file)]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
    const { rows } = await env.pool.query('SELECT count(*)::int AS n FROM model_versions WHERE name = $1', [name]);
    expect(rows[0].n).toBe(0);
  });

  it('rejects a spec that misses an input', async () => {
    const spec = path.join(dataDir, 'spec.json');
    fs.writeFileSync(spec, JSON.stringify({ inputs: [{ name: 'city', dtype: 'string', fields: ['city'] }] }));
    const result = await mldeploy(['models', 'register', uniqueName('cli-bad'), path.join(FIXTURES, 'sk_pipeline.onnx'), '--spec', spec]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/does not feed model input 'x1'/);
  });

  it('explains bad arguments', async () => {
    expect((await mldeploy(['predict', 'x@@y', '--data', '{}'])).stderr).toMatch(/invalid alias/);
    expect((await mldeploy(['predict', 'x', '--data', '{oops'])).stderr).toMatch(/--data is not valid JSON/);
    expect((await mldeploy(['data', 'seed', '--rows', '-5'])).stderr).toMatch(/--rows must be a positive integer/);
    const rides = ['--source', 'rides', '--id-column', 'ride_id', '--timestamp-column', 'lpep_pickup_datetime'];
    expect((await mldeploy(['score', '--model', 'x', ...rides, '--from', 'yesterday', '--to', '2024-02'])).stderr).toMatch(/--from must be a date/);
    expect((await mldeploy(['score', '--model', 'x', ...rides, '--from', '2024-01', '--to', '2024-02', '--source', 'rides;drop'])).stderr).toMatch(
      /source.table: must be a table name/,
    );
    // A generic job names its own key and time columns: the example rides' are no defaults.
    expect((await mldeploy(['score', '--model', 'x', '--source', 'rides', '--from', '2024-01', '--to', '2024-02'])).stderr).toMatch(
      /required option '--id-column <column>' not specified/,
    );
  });
});

/**
 * The error lines of a run's stderr: log records at level error or fatal (pino's 50 and 60),
 * and any other line that says error. A warning (level 40) is not one: on a loaded machine
 * the SDK may warn of an activity attempt it then retries, with an `error` field.
 */
function errorsIn(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => line.trim() !== '')
    .filter((line) => {
      try {
        const record = JSON.parse(line) as { level?: unknown };
        if (typeof record.level === 'number') return record.level >= 50;
      } catch {
        // not a log record
      }
      return /error/i.test(line);
    });
}

/** Nothing configured, as on a fresh machine, in a data folder of its own and on free ports. */
async function embeddedDefaults(dataDir: string) {
  return {
    DATABASE_URL: '',
    TEMPORAL_ADDRESS: '',
    MLDEPLOY_DATA_DIR: dataDir,
    MLDEPLOY_TEMPORAL_PORT: String(await freePort()),
    MLDEPLOY_UI_PORT: String(await freePort()),
    MLDEPLOY_SERVE_PORT: String(await freePort()),
    MLDEPLOY_WORKER_METRICS_PORT: '0',
    MLDEPLOY_SDK_METRICS_PORT: '0',
    // The Temporal CLI the test setup already found or installed.
    TEMPORAL_CLI_PATH: inject('temporalCli'),
  };
}

describe('mldeploy dev --once', () => {
  it('starts its own stack on embedded defaults, runs the demo and exits 0', async () => {
    const own = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-dev-'));
    fs.chmodSync(own, 0o755);
    try {
      const result = await mldeploy(['dev', '--once'], await embeddedDefaults(own));
      expect(errorsIn(result.stderr)).toEqual([]);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/Web UI: +http:\/\/localhost:\d+/);
      expect(result.stdout).toMatch(/demo batch run batch-trip-duration-monthly-20240101T0000Z-20240201T0000Z: 20000 rides scored/);
      // The example models get reference profiles; the demo run prints its drift verdict and report link.
      expect(result.stdout).toMatch(/reference profiles for drift monitoring .*trip-duration@1/);
      expect(result.stdout).toMatch(/ {2}drift: (stable|DRIFTED) /);
      expect(result.stdout).toMatch(/drift report of the demo run: http:\/\/127\.0\.0\.1:\d+\/v1\/runs\/[^/]+\/report/);
      expect(fs.existsSync(path.join(own, 'stack.json'))).toBe(false);
    } finally {
      fs.rmSync(own, { recursive: true, force: true });
    }
  }, 240_000);

  it('stays up, lends its stack to other commands, and stops cleanly on Ctrl-C', async () => {
    const own = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-dev-'));
    fs.chmodSync(own, 0o755);
    const devEnv = await embeddedDefaults(own);
    const dev = spawn(process.execPath, ['bin/mldeploy.js', 'dev'], { env: { ...process.env, ...devEnv, MLDEPLOY_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => dev.once('exit', (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        dev.stdout.on('data', (d) => String(d).includes('mldeploy dev is up') && resolve());
        void exited.then((code) => reject(new Error(`dev exited early (${code})`)));
      });
      const stack = JSON.parse(fs.readFileSync(path.join(own, 'stack.json'), 'utf8'));
      expect(stack.pid).toBe(dev.pid);
      // Another command in another terminal: same data folder, nothing configured.
      const listed = await mldeploy(['models', 'list'], devEnv);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toMatch(/trip-duration@1/);
      expect(fs.readdirSync(path.join(own, 'postgres')).includes('postmaster.pid')).toBe(true);
      // The web service takes events, and the fan-out runs on dev's workers.
      const answer = await fetch(`http://127.0.0.1:${devEnv.MLDEPLOY_SERVE_PORT}/v1/events?wait=true`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'ride_started', id: 'cli-256', payload: { ride: { PULocationID: 130, DOLocationID: 205, trip_distance: 3.66 }, ride_id: 256 } }),
      });
      expect(answer.status).toBe(200);
      expect(JSON.stringify(await answer.json())).toMatch(/"status":"decided"/);
      dev.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(fs.existsSync(path.join(own, 'stack.json'))).toBe(false);
      expect(fs.existsSync(path.join(own, 'postgres', 'postmaster.pid'))).toBe(false);
    } finally {
      dev.kill('SIGKILL');
      fs.rmSync(own, { recursive: true, force: true });
    }
  }, 240_000);
});
