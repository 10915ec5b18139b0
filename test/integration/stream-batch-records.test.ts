// Batched mode's prediction records are kept per (range, consumer). These tests check that a
// range is never scored into two records: a consumer that meets a shorter record at its
// range's start stores only the rest, and a partition workflow started afresh (after a
// terminate) first sends the ranges its predecessor left undecided, exactly as they were,
// even when its own batches would now be cut differently.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPartitionActivities } from '../../activities/stream-partition.ts';
import { ensurePartitionWorkflows } from '../../src/streaming/partitions.ts';
import { predictionBatchId } from '../../src/streaming/prediction-batches.ts';
import type { Decision, ModelId } from '../../src/streaming/types.ts';
import { openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { openStreamRig, readAll, readPredictions, registerRideModels, ride, rideRoute, type ExampleModels, type StreamTestRig } from './stream-env.ts';

let env: TestEnv;
let rig: StreamTestRig;
let models: ExampleModels;
let activities: ReturnType<typeof createPartitionActivities>;
const CONSUMERS = ['duration', 'fare', 'tip'] as const;
let pinned: Record<(typeof CONSUMERS)[number], ModelId>;

beforeAll(async () => {
  env = await openTestEnv();
  models = await registerRideModels(env);
  // Batches of at most 4 events: the predecessor below cut a range of 8.
  rig = await openStreamRig(env, (tag) => ({
    ride_started: { ...rideRoute(models, tag, { required: true }), mode: 'batched', partitions: 1, partitionKey: 'ride_id', batchMax: 4, lingerMs: 0 },
  }));
  activities = createPartitionActivities(rig.deps);
  const ids = await Promise.all(CONSUMERS.map(async (c) => env.store.resolve(models[c])));
  pinned = { duration: ids[0], fare: ids[1], tip: ids[2] };
});
afterAll(async () => {
  await rig?.close();
  await env?.close();
});

async function appendEvents(type: string, n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => uniqueName(`r${i}`));
  for (const [i, id] of ids.entries()) await rig.inbound.append(type, 0, { id, type, payload: { ride: ride(i), ride_id: id }, time: new Date().toISOString() });
  return ids;
}

const score = (type: string, consumer: (typeof CONSUMERS)[number], from: number, to: number) =>
  activities.scoreConsumerBatch({ eventType: type, partition: 0, from, to, consumer, model: { name: pinned[consumer].name, version: pinned[consumer].version }, features: 'ride' });

describe('batched prediction records', () => {
  it('a consumer meeting a shorter record at its range start stores only the rest of the range', async () => {
    const type = 'ride_records';
    const ids = await appendEvents(type, 8);
    await score(type, 'duration', 1, 4);
    await score(type, 'duration', 1, 8);
    await score(type, 'duration', 1, 8);
    const mine = (await readPredictions(rig.backend)).filter((p) => p.value.eventType === type);
    expect(mine.map((p) => p.value.eventId).sort()).toEqual([...ids].sort());
    const records = (await readAll(rig.backend, 'predictions')).filter((r) => r.id.startsWith(`${type}/`)).map((r) => r.id);
    expect(records.sort()).toEqual([predictionBatchId(type, 0, 1, 'duration'), predictionBatchId(type, 0, 5, 'duration')].sort());
  });

  it('a partition workflow started afresh decides its predecessor’s undecided range as it was cut, with each prediction stored once', async () => {
    const ids = await appendEvents('ride_started', 10);
    // The predecessor (terminated before deciding) sent (0, 8] to every consumer.
    for (const c of CONSUMERS) await score('ride_started', c, 1, 8);
    await ensurePartitionWorkflows(env.client, 'ride_started', 1, { taskQueue: rig.taskQueue, namespace: rig.tag, inbound: rig.inbound });
    await expect.poll(async () => (await readAll<Decision>(rig.backend, 'decisions')).length, { timeout: 60_000, interval: 250 }).toBe(10);
    const decisions = await readAll<Decision>(rig.backend, 'decisions');
    expect(decisions.map((d) => d.value.eventId)).toEqual(ids);
    expect(decisions.every((d) => d.value.status === 'decided' && Object.keys(d.value.predictions).length === 3)).toBe(true);
    expect(decisions.slice(0, 8).every((d) => d.value.range?.from === 1 && d.value.range.to === 8)).toBe(true);
    const predictions = (await readPredictions(rig.backend)).filter((p) => p.value.eventType === 'ride_started');
    expect(predictions).toHaveLength(30);
    expect(new Set(predictions.map((p) => p.id)).size).toBe(30);
    // The decisions carry the stored predictions.
    const stored = new Map(predictions.map((p) => [p.id, p.value.prediction]));
    for (const d of decisions) for (const c of CONSUMERS) expect(d.value.predictions[c]).toBe(stored.get(`ride_started:${d.value.eventId}:${c}`));
  });
});
