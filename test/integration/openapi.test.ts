// The OpenAPI document tells the truth: schemathesis (pinned, from PyPI, installed into the
// project's cache) generates requests from /openapi.json against a running `mldeploy serve` and
// checks every answer against it; and a method a path does not take is answered 405 with Allow.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/stack/ports.ts';
import { openTestEnv, registerExample, uniqueName, type TestEnv } from '../helpers.ts';
import { serveConfig, startServer, type TestServer } from './serve-support.ts';
import { ensurePythonTool } from '../setup/python-tool.ts';

const exec = promisify(execFile);
const SCHEMATHESIS_VERSION = '4.32.5';

let env: TestEnv;
beforeAll(async () => {
  env = await openTestEnv();
});
afterAll(async () => {
  await env.close();
});

describe('methods a path does not take', () => {
  let server: TestServer;
  beforeAll(async () => {
    const { name } = await registerExample(env, 'trip-duration');
    server = await startServer(env, serveConfig({ defaultModel: `${name}@production` }));
  });
  afterAll(async () => {
    await server.close();
  });

  it.each([
    ['POST', '/healthz', 'GET, HEAD'],
    ['DELETE', '/v1/models/trip-duration@production/predict', 'POST'],
    ['GET', '/predict', 'POST'],
  ])('%s %s answers 405 with Allow: %s', async (method, url, allow) => {
    const res = await server.app.inject({ method: method as 'GET', url });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe(allow);
    expect(res.json().error).toMatch(new RegExp(`^${method} is not allowed on `));
  });

  it('answers 405, not 400, to QUERY without a Content-Type', async () => {
    const res = await server.app.inject({ method: 'QUERY' as 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
  });

  it('answers 404 to a path no route takes', async () => {
    const res = await server.app.inject({ method: 'GET', url: '/nope' });
    expect(res.statusCode).toBe(404);
    expect(res.headers.allow).toBeUndefined();
  });
});

describe('schemathesis against mldeploy serve', () => {
  let serve: ChildProcess;
  let url: string;
  let dataDir: string;
  let output = '';
  let st: string;

  beforeAll(async () => {
    st = path.join(await ensurePythonTool(`schemathesis-${SCHEMATHESIS_VERSION}`, [`schemathesis==${SCHEMATHESIS_VERSION}`]), 'bin', 'st');
    const { name } = await registerExample(env, 'trip-duration');
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-openapi-'));
    const port = await freePort();
    serve = spawn(process.execPath, ['bin/mldeploy.js', 'serve', '--port', String(port)], {
      env: {
        ...process.env,
        DATABASE_URL: env.databaseUrl,
        TEMPORAL_ADDRESS: env.temporalAddress,
        MLDEPLOY_DATA_DIR: dataDir,
        MLDEPLOY_LOG_LEVEL: 'warn',
        MLDEPLOY_SERVE_MODEL: `${name}@production`,
        // Events the fuzzer emits stay in a namespace and on a task queue of their own; nobody decides them.
        MLDEPLOY_STREAM_NAMESPACE: uniqueName('openapi').replace(/-/g, '_'),
        MLDEPLOY_TASK_QUEUE: uniqueName('tq-openapi'),
        MLDEPLOY_EVENT_WAIT_MS: '200',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    serve.stderr!.on('data', (chunk) => (output += chunk));
    url = await new Promise<string>((resolve, reject) => {
      serve.stdout!.on('data', (chunk) => {
        output += chunk;
        const match = /web service on (http:\/\/\S+)/.exec(output);
        if (match) resolve(match[1]);
      });
      serve.once('exit', (code) => reject(new Error(`mldeploy serve exited (${code}): ${output}`)));
    });
  }, 600_000);
  afterAll(async () => {
    if (serve.exitCode === null) {
      const exited = new Promise((resolve) => serve.once('exit', resolve));
      serve.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  // Every check runs (schemathesis 4's default; `--checks all` would override the config file's
  // one per-operation exception, explained there), on every route, /v2 included.
  it('finds no request the server answers differently from its OpenAPI document', async () => {
    const args = ['--config-file', 'test/openapi/schemathesis.toml', 'run', `${url}/openapi.json`, '--seed', '1', '--max-examples', '10', '--no-color'];
    const result = await exec(st, args, { timeout: 400_000, maxBuffer: 64 * 1024 * 1024 }).then(
      ({ stdout }) => ({ code: 0, stdout }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: `${err.stdout}\n${err.stderr}` }),
    );
    expect(result.code, result.stdout).toBe(0);
    expect(result.stdout).toMatch(/Tested: [1-9]/);
  }, 420_000);
});
