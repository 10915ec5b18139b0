// Batched mode's prediction records are kept per (range, consumer). These tests check that a
// range is never scored into two records: a consumer that meets a shorter record at its
// range's start stores only the rest, and a partition workflow started afresh (after a
// terminate) first sends the ranges its predecessor left undecided, exactly as they were,
// even when its own batches would now be cut differently. A classifier's labels and class
// probabilities travel in its range records to the decision policy.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPartitionActivities } from '../../activities/stream-partition.ts';
import { ensurePartitionWorkflows } from '../../src/streaming/partitions.ts';
import { predictionBatchId } from '../../src/streaming/prediction-batches.ts';
import type { Decision, ModelId } from '../../src/streaming/types.ts';
import { registerModel } from '../../src/registry/register.ts';
import { FIXTURES, openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
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
    // Decided in the range the predecessor cut (alone, or merged with the next one when its consumers had answered too).
    expect(decisions.slice(0, 8).every((d) => d.value.range?.from === 1 && d.value.range.to >= 8)).toBe(true);
    const predictions = (await readPredictions(rig.backend)).filter((p) => p.value.eventType === 'ride_started');
    expect(predictions).toHaveLength(30);
    expect(new Set(predictions.map((p) => p.id)).size).toBe(30);
    // The records start where the predecessor's range and the one after it start; none at 5, where batchMax would have cut.
    const records = (await readAll(rig.backend, 'predictions')).filter((r) => r.id.startsWith('ride_started/')).map((r) => r.id);
    expect(records.sort()).toEqual(CONSUMERS.flatMap((c) => [predictionBatchId('ride_started', 0, 1, c), predictionBatchId('ride_started', 0, 9, c)]).sort());
    // The decisions carry the stored predictions.
    const stored = new Map(predictions.map((p) => [p.id, p.value.prediction]));
    for (const d of decisions) for (const c of CONSUMERS) expect(d.value.predictions[c]).toBe(stored.get(`ride_started:${d.value.eventId}:${c}`));
  });
});

describe('a classifier consumer in batched mode', () => {
  /** classifier_nozipmap: classes 0 and 1; its expected file holds P(class 1) and the label. */
  const binary = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'classifier_nozipmap.expected.json'), 'utf8')) as {
    records: Array<Record<string, number>>;
    predictions: number[];
    labels: number[];
  };
  let payments: StreamTestRig;
  beforeAll(async () => {
    const name = uniqueName('clf-batched');
    await registerModel(env.store, { name, bytes: fs.readFileSync(path.join(FIXTURES, 'classifier_nozipmap.onnx')), alias: 'production', maxBytes: 1 << 26 });
    payments = await openStreamRig(env, (tag) => ({
      payment_made: {
        mode: 'batched',
        partitions: 1,
        consumers: [{ name: 'fraud', model: `${name}@production`, taskQueue: `${tag}-consumer-fraud`, features: 'payment', timeoutMs: 10_000, maxAttempts: 3 }],
        decision: { rules: [{ when: { fraud: { 'proba.1': { gt: 0.8 } } }, action: 'review', reason: 'fraud probability above 0.8' }], default: 'accept' },
      },
    }));
  });
  afterAll(async () => payments?.close());

  it('stores labels and class probabilities in the range record, and a proba.1 rule decides each event', async () => {
    const tag = uniqueName('pay');
    // Record 3: P(1) = 0.959 → review; record 2: P(1) = 0.466 → accept; record 4: P(1) = 0.987 → review.
    const picks = [3, 2, 4];
    const ingress = payments.ingress();
    const outcomes = await Promise.all(picks.map((r) => ingress.emit({ id: `${tag}-${r}`, type: 'payment_made', payload: { payment: binary.records[r] } }, { wait: true })));
    const decisions = outcomes.map((o) => {
      if (o.status !== 'done') throw new Error(`event ${o.eventId} was not decided`);
      return o.decision;
    });
    expect(decisions.map((d) => d.action)).toEqual(['review', 'accept', 'review']);
    picks.forEach((r, i) => {
      expect(decisions[i].labels).toEqual({ fraud: binary.labels[r] });
      expect(Math.abs(decisions[i].probabilities!.fraud['1'] - binary.predictions[r])).toBeLessThan(1e-5);
    });
    const records = (await readPredictions(payments.backend)).map((p) => p.value).filter((v) => v.eventId.startsWith(tag));
    expect(records).toHaveLength(3);
    for (const record of records) {
      const r = Number(record.eventId.split('-').at(-1));
      expect(record).toMatchObject({ consumer: 'fraud', prediction: binary.labels[r], label: binary.labels[r] });
      expect(Math.abs(record.probabilities!['1'] - binary.predictions[r])).toBeLessThan(1e-5);
      expect(Math.abs(record.probabilities!['0'] - (1 - binary.predictions[r]))).toBeLessThan(1e-5);
    }
  });
});
