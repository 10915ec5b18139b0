// Graceful shutdown of the v2 gRPC service as a real process: SIGTERM to `mldeploy serve`
// (MLDEPLOY_GRPC_PORT set) while large ModelInfer calls are being scored. Each call is
// answered in full and the process exits 0.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceService } from '../../src/serve/grpc/inference-service.ts';
import { freePort } from '../../src/stack/ports.ts';
import { openTestEnv, registerExample, type TestEnv } from '../helpers.ts';
import { RIDES, waitFor } from './serve-support.ts';

const IN_FLIGHT = 4;
const ROWS = 10_000;

let env: TestEnv;
let models: string[];
let dataDir: string;
beforeAll(async () => {
  env = await openTestEnv();
  models = [];
  for (let i = 0; i < IN_FLIGHT; i++) models.push((await registerExample(env, 'trip-duration')).name);
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-grpc-sigterm-'));
});
afterAll(async () => {
  await env?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

/** Records scored so far per model, from the service's Prometheus metrics. */
async function recordsScored(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const scored = new Map<string, number>();
  for (const m of text.matchAll(/^mldeploy_inference_batch_records_sum\{lane="web",model="([^"]+)"\} (\S+)$/gm)) scored.set(m[1], Number(m[2]));
  return scored;
}

const bytesOf = (s: string) => Buffer.concat([Buffer.from(Uint32Array.of(Buffer.byteLength(s)).buffer), Buffer.from(s)]);

function inferRequest(model: string, rows: number) {
  const rides = Array.from({ length: rows }, (_, i) => RIDES[i % RIDES.length]);
  return {
    model_name: model,
    inputs: [
      { name: 'PU_DO', datatype: 'BYTES', shape: [rows, 1] },
      { name: 'trip_distance', datatype: 'FP32', shape: [rows, 1] },
    ],
    raw_input_contents: [Buffer.concat(rides.map((r) => bytesOf(`${r.PULocationID}_${r.DOLocationID}`))), Buffer.from(Float32Array.from(rides, (r) => r.trip_distance).buffer)],
  };
}

describe('SIGTERM to `mldeploy serve` with gRPC calls in flight', () => {
  it('answers every call in full and exits 0', async () => {
    const [port, grpcPort] = [await freePort(), await freePort()];
    const child = spawn(process.execPath, ['bin/mldeploy.js', 'serve', '--port', String(port)], {
      env: {
        ...process.env,
        DATABASE_URL: env.databaseUrl,
        TEMPORAL_ADDRESS: env.temporalAddress,
        MLDEPLOY_DATA_DIR: dataDir,
        MLDEPLOY_SERVE_MODEL: `${models[0]}@production`,
        MLDEPLOY_GRPC_PORT: String(grpcPort),
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
    const client = new InferenceService(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20 });
    const call = (request: unknown) =>
      new Promise<{ outputs: Array<{ shape: string[] }>; raw_output_contents: Buffer[] }>((resolve, reject) =>
        (client as unknown as Record<string, (r: unknown, cb: (e: Error | null, res: never) => void) => void>).ModelInfer(request, (e, res) => (e ? reject(e) : resolve(res))),
      );
    try {
      await waitFor(
        () => {
          if (exitCode !== undefined) throw new Error(`mldeploy serve exited (${exitCode}) before listening:\n${stdout}\n${stderr}`);
          return stdout.includes(`Open Inference Protocol gRPC on 127.0.0.1:${grpcPort}`);
        },
        'the gRPC service to listen',
        90_000,
      );
      // Every model loaded first, so the drain is scoring and nothing else.
      for (const model of models) expect((await call(inferRequest(model, 1))).outputs[0].shape).toEqual(['1', '1']);
      const before = await recordsScored(port);
      let answered = 0;
      // Four calls per model (a call holds at most 10,000 rows): enough work that most calls are
      // still in flight when the first is seen scored (four finished within one 50 ms poll).
      const calls = [...models, ...models, ...models, ...models].map((model) =>
        call(inferRequest(model, ROWS)).then((res) => {
          answered++;
          return res;
        }),
      );
      calls.forEach((c) => c.catch(() => undefined)); // asserted below
      await waitFor(
        async () => {
          const scored = await recordsScored(port);
          return answered > 0 || models.some((m) => (scored.get(m) ?? 0) > (before.get(m) ?? 0));
        },
        'the service to be scoring the calls',
        60_000,
      );
      child.kill('SIGTERM');
      expect(answered, 'calls already answered when SIGTERM was sent').toBeLessThan(calls.length / 2);
      const results = await Promise.allSettled(calls);
      expect(results.map((r) => r.status)).toEqual(calls.map(() => 'fulfilled'));
      for (const r of results) {
        const res = (r as PromiseFulfilledResult<Awaited<(typeof calls)[number]>>).value;
        expect(res.outputs[0].shape).toEqual([String(ROWS), '1']);
        expect(res.raw_output_contents[0].length).toBe(ROWS * 4);
      }
      expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 20_000).unref())])).toBe(0);
      expect(stderr).not.toMatch(/error|uncaught/i);
    } finally {
      client.close();
      if (exitCode === undefined) child.kill('SIGKILL');
    }
  });
});
