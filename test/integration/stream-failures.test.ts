// Consumers that are down or failing: a required consumer makes its events wait for the
// worker to come back, an optional one is left out of the decision after its wait, and a
// model that keeps throwing is retried a bounded number of times, then gives the configured
// outcome.
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitEvent, startEvent } from '../../src/streaming/emit.ts';
import { parseEvent } from '../../src/streaming/event.ts';
import type { RouteInput } from '../../src/streaming/routing.ts';
import type { Decision } from '../../src/streaming/types.ts';
import { openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { openStreamRig, readAll, registerRideModels, ride, rideRoute, type StreamTestRig } from './stream-env.ts';

let env: TestEnv;
let rig: StreamTestRig;
let tag: string;

function flakyRoute(duration: string, required: boolean): RouteInput {
  return {
    consumers: [
      {
        name: required ? 'flaky' : 'flaky-opt',
        model: duration,
        taskQueue: `${tag}-consumer-${required ? 'flaky' : 'flaky-opt'}`,
        features: 'ride',
        required,
        timeoutMs: 2_000,
        maxAttempts: required ? 3 : 2,
      },
    ],
    decision: { rules: [], default: 'accept' },
  };
}

beforeAll(async () => {
  env = await openTestEnv();
  const models = await registerRideModels(env);
  rig = await openStreamRig(
    env,
    (t) => {
      tag = t;
      return {
        ride_started: rideRoute(models, t, { required: false, waitMs: 2_000 }),
        ride_checked: rideRoute(models, t, { required: true }),
        ride_flaky: flakyRoute(models.duration, true),
        ride_flaky_opt: flakyRoute(models.duration, false),
      };
    },
    { skipConsumers: ['flaky', 'flaky-opt'] },
  );
});
afterAll(async () => {
  await rig?.close();
  await env?.close();
});

const emitWait = (type: string, id: string, i: number) => emitEvent(env.client, { id, type, payload: { ride: ride(i) } }, { taskQueue: rig.taskQueue, wait: true, waitMs: 60_000 });

describe('a consumer whose workers are down', () => {
  it('optional: events are decided without it; required: events wait, then complete when the worker is back', async () => {
    await rig.consumers.tip.stop();
    const batch = uniqueName('down');
    const waiting = await Promise.all(
      Array.from({ length: 5 }, (_, i) => startEvent(env.client, parseEvent({ id: `${batch}-req-${i}`, type: 'ride_checked', payload: { ride: ride(i) } }), rig.taskQueue)),
    );
    const optional = await Promise.all(Array.from({ length: 5 }, (_, i) => emitWait('ride_started', `${batch}-opt-${i}`, i)));
    for (const r of optional) {
      if (r.status !== 'done') throw new Error('no decision');
      expect(r.decision.status).toBe('decided');
      expect(r.decision.missing).toEqual(['tip']);
      expect(Object.keys(r.decision.predictions).sort()).toEqual(['duration', 'fare']);
      expect(r.decision.reasons.some((reason) => reason.startsWith("optional consumer 'tip' missing: no result in time"))).toBe(true);
    }
    // The required ones are still waiting for the tip worker.
    for (const h of waiting) expect((await h.describe()).status.name).toBe('RUNNING');
    const before = (await readAll<Decision>(rig.backend, 'decisions')).filter((d) => d.value.eventType === 'ride_checked');
    expect(before).toEqual([]);

    await rig.consumers.tip.start();
    const decisions = await Promise.all(waiting.map((h) => h.result()));
    for (const d of decisions) {
      expect(d.status).toBe('decided');
      expect(d.missing).toEqual([]);
      expect(Object.keys(d.predictions).sort()).toEqual(['duration', 'fare', 'tip']);
    }
    const stored = (await readAll<Decision>(rig.backend, 'decisions')).filter((d) => d.value.eventId.startsWith(batch));
    expect(stored.length).toBe(10);
  });
});

describe('a consumer whose model throws', () => {
  async function withThrowingWorker<T>(consumer: string, work: (attempts: () => number) => Promise<T>): Promise<T> {
    let attempts = 0;
    const worker = await Worker.create({
      connection: env.connection,
      taskQueue: `${tag}-consumer-${consumer}`,
      activities: {
        async predictForConsumer() {
          attempts++;
          throw new Error('model exploded');
        },
      },
    });
    return worker.runUntil(work(() => attempts));
  }

  it('required: retried maxAttempts times, then the decision is failed with the reason', async () => {
    await withThrowingWorker('flaky', async (attempts) => {
      const r = await emitWait('ride_flaky', uniqueName('flaky'), 1);
      if (r.status !== 'done') throw new Error('no decision');
      expect(r.decision.status).toBe('failed');
      expect(r.decision.action).toBeNull();
      expect(r.decision.reasons).toEqual(["required consumer 'flaky' failed: model exploded"]);
      expect(attempts()).toBe(3);
    });
  });

  it('optional: retried maxAttempts times, then decided without it', async () => {
    await withThrowingWorker('flaky-opt', async (attempts) => {
      const r = await emitWait('ride_flaky_opt', uniqueName('flaky'), 1);
      if (r.status !== 'done') throw new Error('no decision');
      expect(r.decision.status).toBe('decided');
      expect(r.decision.action).toBe('accept');
      expect(r.decision.missing).toEqual(['flaky-opt']);
      expect(r.decision.reasons).toContain("optional consumer 'flaky-opt' missing: model exploded");
      expect(attempts()).toBe(2);
    });
  });
});
