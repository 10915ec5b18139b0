// The fan-out end to end on a real Temporal dev server and PostgreSQL: every event becomes
// one decision and one prediction per consumer, re-sent events change nothing, invalid ones
// are dead-lettered without disturbing the others.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitEvent } from '../../src/streaming/emit.ts';
import type { Decision, PredictionRecord } from '../../src/streaming/types.ts';
import { openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { inParallel, openStreamRig, readAll, registerRideModels, ride, rideRoute, type ExampleModels, type StreamTestRig } from './stream-env.ts';
import { decisionsTotal, predictionsTotal } from '../../src/streaming/metrics.ts';

let env: TestEnv;
let rig: StreamTestRig;
let models: ExampleModels;
beforeAll(async () => {
  env = await openTestEnv();
  models = await registerRideModels(env);
  // Every consumer required: the counts below must not depend on how loaded the machine is.
  rig = await openStreamRig(env, (tag) => ({ ride_started: rideRoute(models, tag, { required: true }) }));
});
afterAll(async () => {
  await rig?.close();
  await env?.close();
});

describe('ride_started fan-out', () => {
  it('1,000 events become 1,000 decisions and 3,000 predictions; re-sending 100 changes nothing', async () => {
    const batch = uniqueName('ride');
    const ids = Array.from({ length: 1_000 }, (_, i) => `${batch}-${i}`);
    const results = await inParallel(ids, 100, (id) =>
      emitEvent(env.client, { id, type: 'ride_started', payload: { ride: ride(ids.indexOf(id)), ride_id: id } }, { taskQueue: rig.taskQueue, wait: true, waitMs: 60_000 }),
    );
    expect(results.filter((r) => r.status === 'done').length).toBe(1_000);
    const decisions = await readAll<Decision>(rig.backend, 'decisions');
    const predictions = await readAll<PredictionRecord>(rig.backend, 'predictions');
    expect(decisions.length).toBe(1_000);
    expect(predictions.length).toBe(3_000);
    expect(new Set(decisions.map((d) => d.value.eventId))).toEqual(new Set(ids));
    expect(decisions.every((d) => d.value.status === 'decided' && Object.keys(d.value.predictions).length === 3)).toBe(true);
    // Offsets only grow.
    expect(decisions.every((d, i) => i === 0 || d.offset > decisions[i - 1].offset)).toBe(true);

    const again = await inParallel(ids.slice(0, 100), 50, (id) =>
      emitEvent(env.client, { id, type: 'ride_started', payload: { ride: ride(1), ride_id: id } }, { taskQueue: rig.taskQueue, wait: true }),
    );
    const first = new Map(results.map((r) => [r.eventId, r]));
    for (const r of again) {
      expect(r.status).toBe('done');
      expect(r).toEqual(first.get(r.eventId));
    }
    expect((await readAll(rig.backend, 'decisions')).length).toBe(1_000);
    expect((await readAll(rig.backend, 'predictions')).length).toBe(3_000);

    // The Prometheus counters saw each prediction and decision once (this run's models only).
    const predicted = (await predictionsTotal.get()).values.filter((v) => v.labels.status === 'ok' && String(v.labels.model).startsWith(models.duration.split('@')[0]));
    expect(predicted.reduce((n, v) => n + v.value, 0)).toBe(1_000);
    const decided = (await decisionsTotal.get()).values.filter((v) => v.labels.event_type === 'ride_started' && v.labels.status === 'decided');
    expect(decided.reduce((n, v) => n + v.value, 0)).toBe(1_000);
  }, 300_000); // per-event mode runs tens of events a second: on a loaded machine this takes minutes

  it('dead-letters an invalid event with a clear reason; the events around it are decided', async () => {
    const batch = uniqueName('mixed');
    const emit = (id: string, payload: Record<string, unknown>) => emitEvent(env.client, { id, type: 'ride_started', payload }, { taskQueue: rig.taskQueue, wait: true });
    const [before, bad, after] = await Promise.all([
      emit(`${batch}-a`, { ride: ride(3) }),
      emit(`${batch}-bad`, { ride: { PULocationID: 130, DOLocationID: 205, trip_distance: 'far' } }),
      emit(`${batch}-c`, { ride: ride(4) }),
    ]);
    expect(before.status === 'done' && before.decision.status).toBe('decided');
    expect(after.status === 'done' && after.decision.status).toBe('decided');
    if (bad.status !== 'done') throw new Error('the invalid event got no outcome');
    expect(bad.decision.status).toBe('rejected');
    expect(bad.decision.reasons).toEqual(['payload.ride.trip_distance must be a finite number, got "far"']);
    const { rows } = await env.pool.query('SELECT reason, payload FROM dead_letters WHERE event_type = $1 AND event_id = $2', ['ride_started', `${batch}-bad`]);
    expect(rows).toEqual([
      { reason: 'payload.ride.trip_distance must be a finite number, got "far"', payload: { ride: { PULocationID: 130, DOLocationID: 205, trip_distance: 'far' } } },
    ]);
    const description = await env.client.workflow.getHandle(bad.workflowId).describe();
    expect(description.status.name).toBe('COMPLETED');
  });

  it('dead-letters an event whose payload misses the features field, and an unknown event type', async () => {
    const missing = await emitEvent(env.client, { id: uniqueName('nofield'), type: 'ride_started', payload: { ride_id: 3 } }, { taskQueue: rig.taskQueue, wait: true });
    expect(missing.status === 'done' && missing.decision.reasons).toEqual(["payload.ride must be a JSON object with the consumer's features, got missing"]);
    const unknown = await emitEvent(env.client, { id: uniqueName('unk'), type: 'ride_ended', payload: { ride: ride(1) } }, { taskQueue: rig.taskQueue, wait: true });
    expect(unknown.status === 'done' && unknown.decision.status).toBe('rejected');
    expect(unknown.status === 'done' && unknown.decision.reasons[0]).toMatch(/no route for event type 'ride_ended'/);
  });
});
