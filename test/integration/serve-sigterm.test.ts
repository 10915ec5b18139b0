// Graceful shutdown of the web service as a real process: SIGTERM to `mldeploy serve` while
// large batch predictions are being scored. Every request the server had started is answered
// in full, a new connection during the drain is turned away instead of hanging, and the
// process exits 0 with nothing alarming on stdout or stderr.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/stack/ports.ts';
import { openTestEnv, registerExample, type TestEnv } from '../helpers.ts';
import { RIDE, RIDES, waitFor } from './serve-support.ts';

/** Concurrent batch requests in flight at the signal, each for a model of its own. */
const IN_FLIGHT = 6;
/** Records per request: the service's default MLDEPLOY_SERVE_MAX_RECORDS. */
const RECORDS = 10_000;
/** Generous: the process has a few requests to finish and a few connections to close. */
const EXIT_DEADLINE_MS = 20_000;

let env: TestEnv;
/** One registration of the trip-duration model per in-flight request, so the server's metrics show each request's progress. */
let models: string[];
let dataDir: string;
beforeAll(async () => {
  env = await openTestEnv();
  models = [];
  for (let i = 0; i < IN_FLIGHT; i++) models.push((await registerExample(env, 'trip-duration')).name);
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-serve-sigterm-'));
});
afterAll(async () => {
  await env?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: string;
}

/** One request on a connection of its own (no keep-alive pool shared between requests). */
function request(port: number, method: 'GET' | 'POST', urlPath: string, payload?: unknown, onResponse?: () => void): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = payload === undefined ? undefined : JSON.stringify(payload);
    const req = http.request(
      { host: '127.0.0.1', port, method, path: urlPath, agent: false, headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} },
      (res) => {
        onResponse?.();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Records scored so far per model, from the service's own Prometheus metrics. */
async function recordsScored(port: number): Promise<Map<string, number>> {
  const res = await request(port, 'GET', '/metrics');
  expect(res.status).toBe(200);
  const scored = new Map<string, number>();
  for (const m of res.body.matchAll(/^mldeploy_inference_batch_records_sum\{lane="web",model="([^"]+)"\} (\S+)$/gm)) scored.set(m[1], Number(m[2]));
  return scored;
}

function exitWithin(exited: Promise<number | null>, child: ChildProcess, ms: number): Promise<number | null> {
  return Promise.race([
    exited,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`mldeploy serve (pid ${child.pid}) still running ${ms} ms after SIGTERM`)), ms).unref()),
  ]);
}

describe('SIGTERM to a `mldeploy serve` process with requests in flight', () => {
  it('answers every started request in full, turns new connections away, and exits 0', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ['bin/mldeploy.js', 'serve', '--port', String(port)], {
      env: {
        ...process.env,
        DATABASE_URL: env.databaseUrl,
        TEMPORAL_ADDRESS: env.temporalAddress,
        MLDEPLOY_DATA_DIR: dataDir,
        MLDEPLOY_SERVE_MODEL: `${models[0]}@production`,
        MLDEPLOY_LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let exitCode: number | null | undefined;
    void exited.then((code) => (exitCode = code));
    try {
      await waitFor(
        () => {
          if (exitCode !== undefined) throw new Error(`mldeploy serve exited (${exitCode}) before listening:\n${stdout}\n${stderr}`);
          return stdout.includes(`web service on http://127.0.0.1:${port}`);
        },
        'the web service to listen',
        90_000,
      );
      await waitFor(async () => (await request(port, 'GET', '/readyz')).status === 200, 'the default model to load');

      // The course-compatible route works, and gives the reference answers the batches are checked against.
      const single = await request(port, 'POST', '/predict', RIDE);
      expect(single.status).toBe(200);
      expect(JSON.parse(single.body)).toMatchObject({ duration: expect.any(Number), model_version: 1 });
      const reference = await request(port, 'POST', `/v1/models/${models[0]}/predict`, RIDES);
      expect(reference.status).toBe(200);
      const expected = JSON.parse(reference.body).predictions as number[];
      expect(expected).toHaveLength(RIDES.length);
      // Every model loaded before the batches, so the drain is scoring and nothing else.
      for (const model of models) expect((await request(port, 'POST', `/v1/models/${model}/predict`, [RIDE])).status).toBe(200);
      const before = await recordsScored(port);

      // The batches: each on its own connection, for a model of its own.
      const records = Array.from({ length: RECORDS }, (_, i) => RIDES[i % RIDES.length]);
      let answered = 0;
      const batches = models.map((model) => request(port, 'POST', `/v1/models/${model}/predict`, records, () => answered++));
      batches.forEach((b) => b.catch(() => undefined)); // failures are asserted below; keep them from surfacing early

      // Signal once the server is scoring every batch and none is finished.
      let progress: number[] = [];
      await waitFor(
        async () => {
          const scored = await recordsScored(port);
          progress = models.map((m) => (scored.get(m) ?? 0) - (before.get(m) ?? 0));
          if (answered > 0 || progress.some((p) => p >= RECORDS))
            throw new Error(`a batch finished before every batch had started (progress ${progress}); make the batches larger`);
          return progress.every((p) => p > 0);
        },
        'every batch to be scoring',
        60_000,
      );
      child.kill('SIGTERM');
      const inFlightAtSignal = IN_FLIGHT - answered;
      expect(inFlightAtSignal).toBe(IN_FLIGHT);
      expect(progress.every((p) => p > 0 && p < RECORDS)).toBe(true);

      // A new connection once the service has begun shutting down: refused, reset or 503, never
      // a hang. Tried again and again from the signal on (answered 200 until the process has
      // taken the signal), so the first refusal comes while the batches are still draining.
      let late = '';
      let stillInFlight = 0;
      for (const until = Date.now() + 10_000; Date.now() < until; await new Promise((r) => setTimeout(r, 5))) {
        stillInFlight = IN_FLIGHT - answered;
        late = await Promise.race([
          request(port, 'GET', '/healthz').then(
            (res) => `status ${res.status}`,
            (err: NodeJS.ErrnoException) => `error ${err.code ?? err.message}`,
          ),
          new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 5 s'), 5_000).unref()),
        ]);
        if (late !== 'status 200') break;
      }
      expect(late).toMatch(/^(error (ECONNREFUSED|ECONNRESET|socket hang up)|status 503)$/);
      expect(stillInFlight, 'the late connection was tried while batches were still being scored').toBeGreaterThan(0);
      await waitFor(() => stdout.includes('SIGTERM: finishing in-flight requests'), 'the service to acknowledge SIGTERM');

      // Every batch in flight at the signal is answered in full, with the right predictions.
      const answers = await Promise.all(batches);
      for (const [i, answer] of answers.entries()) {
        expect(answer.status, answer.body.slice(0, 300)).toBe(200);
        const body = JSON.parse(answer.body) as { model: string; version: number; predictions: number[] };
        expect(body.model).toBe(models[i]);
        expect(body.predictions).toHaveLength(RECORDS);
        for (const [j, p] of body.predictions.entries()) {
          if (Math.abs(p - expected[j % expected.length]) > 1e-3) throw new Error(`batch ${i} record ${j}: ${p}, expected ${expected[j % expected.length]}`);
        }
      }

      expect(await exitWithin(exited, child, EXIT_DEADLINE_MS)).toBe(0);
      expect(stdout).toContain('SIGTERM: finishing in-flight requests');
      const output = `${stdout}\n${stderr}`;
      expect(output).not.toMatch(/unhandled|uncaught|ERR_|\n\s+at /i);
      expect(output).not.toMatch(/^error:/m);
      // pino JSON logs: nothing at error (50) or fatal (60).
      const severe = stderr.split('\n').filter((line) => /"level":\s*(50|60)\b/.test(line));
      expect(severe).toEqual([]);
    } finally {
      if (exitCode === undefined) child.kill('SIGKILL');
    }
  }, 180_000);
});
