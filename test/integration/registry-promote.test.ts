// The one model resolver: a promotion reaches every lane within 200 ms through PostgreSQL
// LISTEN/NOTIFY (polling is set far slower than that here, so only a notification can do it):
// the web service answers with the new version, a new batch run plans with it, and stream
// planning pins it for the consumers, which score with it. A dropped LISTEN connection comes
// back, and a resolver that cannot listen falls back to polling.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBatchActivities } from '../../activities/batch.ts';
import { RIDE_COLUMNS } from '../../src/demo.ts';
import { ModelResolver } from '../../src/registry/resolver.ts';
import { ModelCache } from '../../src/registry/runtime.ts';
import { emitEvent } from '../../src/streaming/emit.ts';
import type { PredictionRecord } from '../../src/streaming/types.ts';
import { openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { ridesTable } from './batch-support.ts';
import { RIDE, freshName, registerAs, serveConfig, startServer, waitFor, type TestServer } from './serve-support.ts';
import { openStreamRig, readAll, type StreamTestRig } from './stream-env.ts';

const WITHIN_MS = 200;

let env: TestEnv;
let name: string;
let server: TestServer;
let batchModels: ModelCache;
let rig: StreamTestRig;
let table: string;

beforeAll(async () => {
  env = await openTestEnv();
  name = freshName('promote');
  // Two versions that take the same features but answer differently.
  await registerAs(env, name, 'trip-duration', 'production');
  await registerAs(env, name, 'fare');
  server = await startServer(env, serveConfig({ defaultModel: `${name}@production`, aliasPollMs: 60_000 }));
  batchModels = new ModelCache(env.store, 1);
  table = (await ridesTable(env.pool, { '2024-01': 200 })).view;
  rig = await openStreamRig(env, (tag) => ({
    ride_started: {
      consumers: [{ name: 'duration', model: `${name}@production`, taskQueue: `${tag}-consumer-duration`, features: 'ride', required: true, timeoutMs: 10_000, maxAttempts: 3 }],
      decision: { rules: [], default: 'accept' },
    },
  }));
});
afterAll(async () => {
  await rig?.close();
  await server?.close();
  await batchModels?.release();
  await env?.close();
});

const webVersion = async () => (await server.app.inject({ method: 'POST', url: '/predict', payload: RIDE })).json().model_version as number;
const v1Version = async () => (await server.app.inject({ method: 'POST', url: `/v1/models/${name}/predict`, payload: RIDE })).json().version as number;

async function prepareRun(): Promise<number> {
  const batch = createBatchActivities({ pool: env.pool, store: env.store, models: batchModels });
  const window = { from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00Z' };
  const job = { name: uniqueName('promote-job'), model: `${name}@production`, source: { table, ...RIDE_COLUMNS }, window };
  const prepared = await batch.prepareBatchRun({ job, window, runId: uniqueName('run'), workflowId: uniqueName('wf') });
  return prepared.model.version;
}

async function streamPrediction(): Promise<PredictionRecord> {
  const id = uniqueName('ride');
  const result = await emitEvent(env.client, { id, type: 'ride_started', payload: { ride: RIDE } }, { taskQueue: rig.taskQueue, wait: true, waitMs: 60_000 });
  expect(result.status).toBe('done');
  const predictions = await readAll<PredictionRecord>(rig.backend, 'predictions');
  return predictions.find((p) => p.value.eventId === id)!.value;
}

/** Milliseconds from now until `check` holds (polled every 5 ms), or a failure after 5 s. */
async function msUntil(check: () => Promise<boolean>, started: number): Promise<number> {
  while (!(await check())) {
    if (performance.now() - started > 5_000) throw new Error('the promotion never arrived');
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - started;
}

describe('a promotion', () => {
  it(`is served within ${WITHIN_MS} ms by the web service, new batch runs and stream planning`, async () => {
    // Every lane warm on version 1, with its resolver listening.
    expect(await webVersion()).toBe(1);
    expect(await v1Version()).toBe(1);
    expect(await prepareRun()).toBe(1);
    const before = await streamPrediction();
    expect(before.model.version).toBe(1);
    const streamResolver = rig.deps.models.resolver;
    await waitFor(() => server.models.resolver.listening && batchModels.resolver.listening && streamResolver.listening, 'the LISTEN connections');

    const started = performance.now();
    await env.store.promote(name, 2, 'production');
    const [web, v1, batch, planning] = await Promise.all([
      msUntil(async () => (await webVersion()) === 2, started),
      msUntil(async () => (await v1Version()) === 2, started),
      msUntil(async () => (await batchModels.resolver.resolve(`${name}@production`)).version === 2, started),
      msUntil(async () => (await streamResolver.resolve(`${name}@production`)).version === 2, started),
    ]);
    expect({ web, v1, batch, planning }).toEqual({ web: expect.any(Number), v1: expect.any(Number), batch: expect.any(Number), planning: expect.any(Number) });
    for (const [lane, ms] of Object.entries({ web, v1, batch, planning })) expect(ms, `${lane}: ${ms.toFixed(0)} ms`).toBeLessThan(WITHIN_MS);

    // What each lane then does uses version 2: a new batch run plans with it, and an event is
    // planned with it and scored by the consumer with it.
    expect(await prepareRun()).toBe(2);
    const after = await streamPrediction();
    expect(after.model).toEqual({ name, version: 2 });
    expect(after.prediction).not.toBe(before.prediction);
    expect((await server.app.inject('/readyz')).json().models[`${name}@production`]).toBe(2);
  });

  it('still arrives within 200 ms after the LISTEN connection drops and comes back', async () => {
    const resolver = server.models.resolver;
    resolver.breakListener();
    await waitFor(() => !resolver.listening, 'the connection to drop', 5_000);
    await waitFor(() => resolver.listening, 'the LISTEN connection to come back', 10_000);
    const started = performance.now();
    await env.store.promote(name, 1, 'production');
    expect(await msUntil(async () => (await webVersion()) === 1, started)).toBeLessThan(WITHIN_MS);
  });

  it('reaches a resolver that cannot listen by polling', async () => {
    const cache = new ModelCache(env.store, 1);
    const polling = new ModelResolver(env.store, cache, { listen: false, pollMs: 100 });
    try {
      const current = (await polling.resolve(name)).version;
      const target = current === 1 ? 2 : 1;
      const started = performance.now();
      await env.store.promote(name, target, 'production');
      const ms = await msUntil(async () => (await polling.resolve(name)).version === target, started);
      expect(polling.listening).toBe(false);
      expect(ms).toBeLessThan(1_000);
    } finally {
      await polling.stop();
      await cache.release();
    }
  });
});
