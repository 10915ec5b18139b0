// `mldeploy models import` against a real MLflow tracking server (pinned mlflow from PyPI,
// basic auth on), as a user runs it: the CLI in a child process.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/stack/ports.ts';
import { FIXTURES, openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { startMlflow, type RunningMlflow } from '../setup/mlflow.ts';

const exec = promisify(execFile);
const PASSWORD = 'mlflow-admin-pass-1234';
const LINEAR = path.join(FIXTURES, 'plain_linear.onnx');
const EXPECTED = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'plain_linear.expected.json'), 'utf8')) as { records: object[]; predictions: number[] };
const COLUMNS = ['--columns', 'a,b,c', '--example', JSON.stringify(EXPECTED.records[0])];

let env: TestEnv;
let mlflow: RunningMlflow;
let dataDir: string;
const registered = uniqueName('mlf-linear');
const corrupt = uniqueName('mlf-corrupt');
let sklearnRun: string;
const localDir = () => path.join(dataDir, 'local-model');

beforeAll(async () => {
  env = await openTestEnv();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-mlflow-cli-'));
  fs.chmodSync(dataDir, 0o755);
  mlflow = await startMlflow({ adminPassword: PASSWORD });
  // A registered ONNX model, a scikit-learn run, a registered model directory whose ONNX file
  // is damaged, and a local model directory: what users log, in one Python start-up.
  const broken = path.join(dataDir, 'broken');
  const [, , , sklearn] = await mlflow.log(
    ['save', LINEAR, broken, '--corrupt', ...COLUMNS],
    ['raw', broken, corrupt, '--alias', 'champion'],
    ['onnx', LINEAR, registered, '--alias', 'champion', ...COLUMNS],
    ['sklearn'],
    ['save', LINEAR, localDir(), ...COLUMNS],
  );
  sklearnRun = sklearn.runId as string;
}, 900_000);

afterAll(async () => {
  await mlflow?.stop();
  await env?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

async function mldeploy(args: string[], extraEnv: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['bin/mldeploy.js', ...args], {
      env: {
        ...process.env,
        ...mlflow.clientEnv,
        DATABASE_URL: env.databaseUrl,
        TEMPORAL_ADDRESS: env.temporalAddress,
        MLDEPLOY_DATA_DIR: dataDir,
        MLDEPLOY_LOG_LEVEL: 'warn',
        ...extraEnv,
      },
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function stored(name: string): Promise<number> {
  const { rows } = await env.pool.query('SELECT count(*)::int AS n FROM model_versions WHERE name = $1', [name]);
  return rows[0].n;
}

describe('models import from MLflow', () => {
  it('imports an ONNX model by alias, with a spec from its signature, provenance, and the ONNX file’s predictions', async () => {
    const name = uniqueName('imp-alias');
    const imported = await mldeploy(['models', 'import', name, `models:/${registered}@champion`, '--alias', 'production']);
    expect(imported.stderr).toBe('');
    const out = JSON.parse(imported.stdout);
    expect(out).toMatchObject({ name, version: 1, created: true, aliases: ['production'] });
    expect(out.provenance).toMatchObject({
      trackingUri: mlflow.url,
      registeredModel: registered,
      registeredVersion: '1',
      runId: expect.any(String),
      sourceUri: expect.stringMatching(/^models:\/m-/),
    });

    const predicted = JSON.parse((await mldeploy(['predict', `${name}@production`, '--data', JSON.stringify(EXPECTED.records)])).stdout);
    expect(predicted.errors).toEqual([]);
    predicted.predictions.forEach((p: number, i: number) => expect(p).toBeCloseTo(EXPECTED.predictions[i], 5));

    const shown = await mldeploy(['models', 'show', name]);
    const version = JSON.parse(shown.stdout);
    expect(version.spec.inputs).toEqual([{ name: 'x', dtype: 'float32', fields: ['a', 'b', 'c'] }]);
    expect(version.provenance.signature.inputs.map((f: { name: string }) => f.name)).toEqual(['a', 'b', 'c']);
    expect(shown.stdout).not.toContain(PASSWORD);
  });

  it('stores one MLflow version once, whether named by alias or by number', async () => {
    const name = uniqueName('imp-twice');
    expect(JSON.parse((await mldeploy(['models', 'import', name, `models:/${registered}@champion`])).stdout).created).toBe(true);
    const again = await mldeploy(['models', 'import', name, `models:/${registered}/1`, '--alias', 'production']);
    expect(JSON.parse(again.stdout)).toMatchObject({ version: 1, created: false, aliases: ['production'] });
    expect(await stored(name)).toBe(1);
  });

  it('imports a local MLflow model directory', async () => {
    const name = uniqueName('imp-local');
    const imported = await mldeploy(['models', 'import', name, localDir()]);
    expect(imported.stderr).toBe('');
    const predicted = JSON.parse((await mldeploy(['predict', name, '--data', JSON.stringify(EXPECTED.records[1])])).stdout);
    expect(predicted.predictions[0]).toBeCloseTo(EXPECTED.predictions[1], 5);
  });

  it('refuses a scikit-learn model logged with mlflow.sklearn, giving the export steps', async () => {
    const name = uniqueName('imp-sklearn');
    const result = await mldeploy(['models', 'import', name, `runs:/${sklearnRun}/model`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/sklearn flavor.*skl2onnx==.*to_onnx.*mlflow\.onnx\.log_model/);
    expect(await stored(name)).toBe(0);
  });

  it.each([
    ['a wrong URI', () => ['models:/only-a-name'], {}, /names no version or alias/],
    ['a missing alias', () => [`models:/${registered}@nope`], {}, /alias nope not found/],
    ['a missing run', () => ['runs:/0123456789abcdef0123456789abcdef/model'], {}, /MLflow .* answered HTTP 404/],
    ['bad credentials', () => [`models:/${registered}@champion`], { MLFLOW_TRACKING_PASSWORD: 'wrong' }, /refused the request \(HTTP 401\).*MLFLOW_TRACKING_USERNAME/],
    ['a corrupt artifact', () => [`models:/${corrupt}@champion`], {}, /cannot load the file as an ONNX model/],
  ] as const)('rejects %s with one clear line, exit 1, nothing stored', async (_title, uri, extraEnv, message) => {
    const name = uniqueName('imp-bad');
    const result = await mldeploy(['models', 'import', name, ...uri()], extraEnv);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(await stored(name)).toBe(0);
  });

  it('rejects an unreachable server with one clear line, exit 1, nothing stored', async () => {
    const name = uniqueName('imp-down');
    const result = await mldeploy(['models', 'import', name, `models:/${registered}@champion`], { MLFLOW_TRACKING_URI: `http://127.0.0.1:${await freePort()}` });
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toMatch(/^error: cannot reach the MLflow tracking server at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    expect(await stored(name)).toBe(0);
  });
});

describe('MLFLOW_TRACKING_INSECURE_TLS', () => {
  // A TLS-terminating proxy with a self-signed certificate (made with openssl now) in front of
  // the test's MLflow server, as a tracking server behind an internal TLS endpoint is reached.
  let proxy: tls.Server;
  let httpsUrl: string;
  let connections = 0;
  beforeAll(async () => {
    const key = path.join(dataDir, 'tls-key.pem');
    const cert = path.join(dataDir, 'tls-cert.pem');
    await exec('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ]);
    const upstream = new URL(mlflow.url);
    proxy = tls.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (socket) => {
      connections++;
      const backend = net.connect(Number(upstream.port), upstream.hostname);
      socket.pipe(backend).pipe(socket);
      socket.on('error', () => backend.destroy());
      backend.on('error', () => socket.destroy());
    });
    proxy.on('tlsClientError', () => {}); // the refused handshakes of the first import
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    httpsUrl = `https://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
  });
  afterAll(async () => {
    if (proxy) await new Promise((resolve) => proxy.close(resolve));
  });

  it('a self-signed certificate fails with one clear certificate error and stores nothing; with MLFLOW_TRACKING_INSECURE_TLS=true the import succeeds', async () => {
    const name = uniqueName('imp-tls');
    const refused = await mldeploy(['models', 'import', name, `models:/${registered}@champion`], { MLFLOW_TRACKING_URI: httpsUrl });
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(
      /presented a TLS certificate that cannot be verified \(DEPTH_ZERO_SELF_SIGNED_CERT: self[- ]signed certificate\).*MLFLOW_TRACKING_INSECURE_TLS=true/,
    );
    expect(await stored(name)).toBe(0);

    const before = connections;
    const imported = await mldeploy(['models', 'import', name, `models:/${registered}@champion`], { MLFLOW_TRACKING_URI: httpsUrl, MLFLOW_TRACKING_INSECURE_TLS: 'true' });
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ name, version: 1, created: true, provenance: { trackingUri: httpsUrl, registeredModel: registered } });
    expect(connections).toBeGreaterThan(before); // through the TLS proxy
    const predicted = JSON.parse((await mldeploy(['predict', name, '--data', JSON.stringify(EXPECTED.records)])).stdout);
    predicted.predictions.forEach((p: number, i: number) => expect(p).toBeCloseTo(EXPECTED.predictions[i], 5));
  });
});
