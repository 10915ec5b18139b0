// `mldeploy models follow` with a real MLflow server, a real worker and a running web service:
// moving the MLflow alias switches what /v1/models/{name}@production serves within the
// interval plus 5 s, with no failed request; a broken version is not promoted and says why.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FIXTURES, openTestEnv, startTestWorker, uniqueName, type TestEnv } from '../helpers.ts';
import { serveConfig, startServer, waitFor, type TestServer } from './serve-support.ts';
import { startMlflow, type RunningMlflow } from '../setup/mlflow.ts';

const exec = promisify(execFile);
const LINEAR = path.join(FIXTURES, 'plain_linear.onnx');
const RECORD = { a: -2.75, b: -1.25, c: -4.0 };
const COLUMNS = ['--columns', 'a,b,c', '--example', JSON.stringify(RECORD)];
const EVERY_MS = 2000;

let env: TestEnv;
let mlflow: RunningMlflow;
let worker: Awaited<ReturnType<typeof startTestWorker>>;
let server: TestServer;
let dataDir: string;
let base: string;
const registered = uniqueName('mlf-follow');
const name = uniqueName('followed');

beforeAll(async () => {
  env = await openTestEnv();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-follow-'));
  fs.chmodSync(dataDir, 0o755);
  mlflow = await startMlflow();
  // Version 1 (@champion), version 2 (every weight doubled) and version 3 (a damaged ONNX file).
  const broken = path.join(dataDir, 'broken');
  await mlflow.log(
    ['save', LINEAR, broken, '--corrupt', ...COLUMNS],
    ['onnx', LINEAR, registered, '--alias', 'champion', ...COLUMNS],
    ['onnx', LINEAR, registered, '--scale', '2', ...COLUMNS],
    ['raw', broken, registered],
  );
  worker = await startTestWorker(env);
  server = await startServer(env, serveConfig());
  base = await server.app.listen({ host: '127.0.0.1', port: 0 });
}, 900_000);

afterAll(async () => {
  await server?.close();
  await worker?.stop();
  await mlflow?.stop();
  await env?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

async function mldeploy(args: string[]) {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['bin/mldeploy.js', ...args], {
      env: {
        ...process.env,
        ...mlflow.clientEnv,
        DATABASE_URL: env.databaseUrl,
        TEMPORAL_ADDRESS: env.temporalAddress,
        MLDEPLOY_TASK_QUEUE: worker.taskQueue,
        MLDEPLOY_DATA_DIR: dataDir,
        MLDEPLOY_LOG_LEVEL: 'warn',
      },
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function moveMlflowAlias(version: number) {
  const res = await fetch(`${mlflow.url}/api/2.0/mlflow/registered-models/alias`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: registered, alias: 'champion', version: String(version) }),
  });
  expect(res.status).toBe(200);
}

async function served(): Promise<{ status: number; version?: number; prediction?: number }> {
  const res = await fetch(`${base}/v1/models/${name}@production/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([RECORD]) });
  const body = (await res.json()) as { version?: number; predictions?: number[] };
  return { status: res.status, version: body.version, prediction: body.predictions?.[0] };
}

async function followerStatus() {
  const listed = JSON.parse((await mldeploy(['models', 'follow', '--list'])).stdout) as Array<{ workflowId: string; status: Record<string, unknown> }>;
  return listed.find((f) => f.workflowId === `model-follower-${name}-production`);
}

it('follows an MLflow alias: moves are served within the interval plus 5 s, no request fails, a broken version is not promoted', async () => {
  const started = await mldeploy(['models', 'follow', name, '--from', `models:/${registered}@champion`, '--alias', 'production', '--every', '2s']);
  expect(started.stderr).toBe('');
  expect(JSON.parse(started.stdout)).toMatchObject({ workflowId: `model-follower-${name}-production`, trackingUri: mlflow.url });
  const twice = await mldeploy(['models', 'follow', name, '--from', `models:/${registered}@champion`]);
  expect(twice.code).toBe(1);
  expect(twice.stderr).toMatch(/is followed already/);

  await waitFor(async () => (await served()).version === 1, 'the first import to be served', 60_000);
  expect((await served()).prediction).toBeCloseTo(-7.0625, 5);

  // Steady traffic while the alias moves.
  const answers: Array<{ status: number; version?: number }> = [];
  let traffic = true;
  const load = (async () => {
    while (traffic) {
      answers.push(await served().catch((err: Error) => ({ status: 0, error: err.message })));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();

  const moved = Date.now();
  await moveMlflowAlias(2);
  await waitFor(async () => (await served()).version === 2, 'version 2 to be served', EVERY_MS + 5000);
  const elapsed = Date.now() - moved;
  expect((await served()).prediction).toBeCloseTo(-14.125, 5);

  await moveMlflowAlias(3);
  await waitFor(async () => ((await followerStatus())?.status.rejected as { mlflowVersion?: string } | undefined)?.mlflowVersion === '3', 'version 3 to be rejected', 60_000);
  const status = (await followerStatus())!.status;
  expect((status.rejected as { reason: string }).reason).toMatch(/cannot load the file as an ONNX model/);
  expect(status.promoted).toMatchObject({ version: 2, mlflowVersion: '2' });
  traffic = false;
  await load;

  expect((await served()).version).toBe(2);
  expect((await env.store.resolve(`${name}@production`)).version).toBe(2);
  expect(await env.store.versionNumbers(name)).toEqual([1, 2]);
  expect(answers.filter((a) => a.status !== 200)).toEqual([]);
  expect(answers.some((a) => a.version === 1) && answers.some((a) => a.version === 2)).toBe(true);
  expect(elapsed).toBeLessThanOrEqual(EVERY_MS + 5000);

  expect(JSON.parse((await mldeploy(['models', 'follow', name, '--stop'])).stdout)).toMatchObject({ stopped: true });
  expect(await followerStatus()).toBeUndefined();
  expect((await mldeploy(['models', 'follow', name, '--stop'])).stderr).toMatch(/no follower runs/);
});
