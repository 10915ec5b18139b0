// Batched fan-out end to end on a real Temporal dev server and PostgreSQL: events appended to
// the inbound log are decided by the partition workflows exactly once, in key order, with
// invalid events dead-lettered beside normally decided neighbours.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventIngress } from '../../src/streaming/ingress.ts';
import { ensurePartitionWorkflows } from '../../src/streaming/partitions.ts';
import type { Decision } from '../../src/streaming/types.ts';
import { openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { inParallel, openStreamRig, readAll, readPredictions, registerRideModels, ride, rideRoute, type ExampleModels, type StreamTestRig } from './stream-env.ts';

let env: TestEnv;
let rig: StreamTestRig;
let models: ExampleModels;
let ingress: EventIngress;

beforeAll(async () => {
  env = await openTestEnv();
  models = await registerRideModels(env);
  rig = await openStreamRig(env, (tag) => ({
    ride_started: { ...rideRoute(models, tag, { required: true }), mode: 'batched', partitions: 4, partitionKey: 'ride_id' },
  }));
  ingress = rig.ingress();
});
afterAll(async () => {
  await rig?.close();
  await env?.close();
});

describe('batched ride_started fan-out', () => {
  it('20,000 events emitted at 1,000/s become 20,000 decisions and 60,000 predictions; re-sending 2,000 changes nothing', async () => {
    const batch = uniqueName('ride');
    const total = 20_000;
    const ids = Array.from({ length: total }, (_, i) => `${batch}-${i}`);
    // An open loop at a fixed rate, as a producer sends: 100 events every 100 ms.
    const started = performance.now();
    const accepted: Promise<{ status: string; offset?: number }>[] = [];
    for (let i = 0; i < total; i += 100) {
      const due = started + i;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      for (let j = i; j < i + 100; j++) accepted.push(ingress.emit({ id: ids[j], type: 'ride_started', payload: { ride: ride(j), ride_id: ids[j] } }));
    }
    const results = await Promise.all(accepted);
    const seconds = (performance.now() - started) / 1000;
    expect(total / seconds).toBeGreaterThanOrEqual(500);
    expect(results.every((r) => r.status === 'accepted' && r.offset! > 0)).toBe(true);
    // The last one waits for its decision through the decision stream.
    const last = await ingress.emit({ id: ids[total - 1], type: 'ride_started', payload: { ride: ride(1), ride_id: ids[total - 1] } }, { wait: true });
    expect(last.status).toBe('done');
    await expect.poll(async () => (await readAll<Decision>(rig.backend, 'decisions')).length, { timeout: 120_000, interval: 1_000 }).toBe(total);
    const decisions = await readAll<Decision>(rig.backend, 'decisions');
    const predictions = await readPredictions(rig.backend);
    expect(predictions.length).toBe(3 * total);
    expect(new Set(predictions.map((p) => p.id)).size).toBe(3 * total);
    // Each consumer stores a range's predictions as one record.
    expect((await readAll(rig.backend, 'predictions')).length).toBeLessThan(total);
    expect(new Set(decisions.map((d) => d.value.eventId))).toEqual(new Set(ids));
    expect(decisions.every((d) => d.value.status === 'decided' && Object.keys(d.value.predictions).length === 3)).toBe(true);

    const again = await inParallel(ids.slice(0, 2_000), 200, (id) => ingress.emit({ id, type: 'ride_started', payload: { ride: ride(1), ride_id: id } }, { wait: true }));
    expect(again.every((r) => r.status === 'done' && r.decision.eventId === r.eventId)).toBe(true);
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await readAll(rig.backend, 'decisions')).length).toBe(total);
    expect((await readPredictions(rig.backend)).length).toBe(3 * total);
  });

  it('decides events sharing a partition key in emit order', async () => {
    const key = uniqueName('key');
    const ids = Array.from({ length: 200 }, (_, i) => `${key}-${String(i).padStart(3, '0')}`);
    for (const id of ids) await ingress.emit({ id, type: 'ride_started', payload: { ride: ride(3), ride_id: key } });
    await expect
      .poll(async () => (await readAll<Decision>(rig.backend, 'decisions')).filter((d) => d.value.eventId.startsWith(key)).length, { timeout: 30_000, interval: 250 })
      .toBe(200);
    const order = (await readAll<Decision>(rig.backend, 'decisions')).filter((d) => d.value.eventId.startsWith(key)).map((d) => d.value.eventId);
    expect(order).toEqual(ids);
  });

  it('dead-letters an invalid event in the middle of a batch; its neighbours are decided normally', async () => {
    const tag = uniqueName('mixed');
    const ids = Array.from({ length: 21 }, (_, i) => `${tag}-${i}`);
    const results = await Promise.all(
      ids.map((id, i) =>
        ingress.emit({ id, type: 'ride_started', payload: { ride: i === 10 ? { PULocationID: 'nowhere', DOLocationID: 5 } : ride(i), ride_id: tag } }, { wait: true }),
      ),
    );
    const byId = new Map(results.map((r) => [r.eventId, r]));
    const bad = byId.get(ids[10])!;
    expect(bad.status).toBe('done');
    if (bad.status !== 'done') return;
    expect(bad.decision.status).toBe('rejected');
    expect(bad.decision.reasons.join(' ')).toMatch(/payload\.ride\./);
    for (const id of ids.filter((_, i) => i !== 10)) {
      const r = byId.get(id)!;
      expect(r.status === 'done' && r.decision.status).toBe('decided');
    }
    const { rows } = await env.pool.query('SELECT reason FROM dead_letters WHERE event_type = $1 AND event_id = $2', ['ride_started', ids[10]]);
    expect(rows[0].reason).toMatch(/PULocationID|DOLocationID|trip_distance/);
    const predictions = await readPredictions(rig.backend);
    expect(predictions.filter((p) => p.value.eventId === ids[10])).toHaveLength(0);
  });

  it('moves a partition workflow left on another task queue to the one that ensures it; its events are then decided', async () => {
    const ensure = (taskQueue: string) => ensurePartitionWorkflows(env.client, 'ride_started', 4, { taskQueue, namespace: rig.tag, inbound: rig.inbound });
    const [p0] = await ensure(uniqueName('gone'));
    expect((await env.client.workflow.getHandle(p0).describe()).taskQueue).not.toBe(rig.taskQueue);
    await ensure(rig.taskQueue);
    expect((await env.client.workflow.getHandle(p0).describe()).taskQueue).toBe(rig.taskQueue);
    const id = uniqueName('moved');
    const result = await ingress.emit({ id, type: 'ride_started', payload: { ride: ride(2), ride_id: id } }, { wait: true });
    expect(result.status === 'done' && result.decision.status).toBe('decided');
  });
});
