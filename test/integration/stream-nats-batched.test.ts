// Batched fan-out with NATS JetStream (127.0.0.1:4222) as both the inbound event log and the
// stream backend, on a real Temporal dev server and PostgreSQL (models, dead letters): the
// exactly-once test of the PostgreSQL batched test holds. Also the JetStream inbound log's own
// contract, and a prediction/decision stream made before records had subjects of their own.
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventIngress } from '../../src/streaming/ingress.ts';
import { NatsStreamBackend, natsNames } from '../../src/streaming/nats-backend.ts';
import { NatsInboundLog } from '../../src/streaming/nats-inbound-log.ts';
import type { Decision } from '../../src/streaming/types.ts';
import { openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { inParallel, openStreamRig, readAll, readPredictions, registerRideModels, ride, rideRoute, type StreamTestRig } from './stream-env.ts';

const NATS = '127.0.0.1:4222';
const EVENTS = 5_000;
const RESENT = 500;

let env: TestEnv;
let rig: StreamTestRig;
let ingress: EventIngress;
let nc: NatsConnection;

beforeAll(async () => {
  env = await openTestEnv();
  const models = await registerRideModels(env);
  rig = await openStreamRig(env, (tag) => ({ ride_started: { ...rideRoute(models, tag, { required: true }), mode: 'batched', partitions: 4, partitionKey: 'ride_id' } }), {
    backend: 'nats',
  });
  ingress = rig.ingress();
  nc = await connect({ servers: NATS });
});
afterAll(async () => {
  await nc?.drain();
  await rig?.close();
  await env?.close();
});

function event(id: string, i: number) {
  return { id, type: 'ride_started', payload: { ride: ride(i), ride_id: id } };
}

describe('batched fan-out on JetStream (inbound log and streams)', () => {
  it(`${EVENTS.toLocaleString('en')} events become exactly as many decisions and 3× predictions; re-sending ${RESENT} changes nothing`, async () => {
    expect(rig.inbound).toBeInstanceOf(NatsInboundLog);
    expect(rig.backend.kind).toBe('nats');
    const batch = uniqueName('jsb');
    const ids = Array.from({ length: EVENTS }, (_, i) => `${batch}-${i}`);
    const started = Date.now();
    const accepted = await inParallel(ids, 200, (id) => ingress.emit(event(id, ids.indexOf(id))));
    expect(accepted.every((r) => r.status === 'accepted' && r.offset! > 0)).toBe(true);
    // The last one again, waiting for its decision through the JetStream decision stream.
    const last = await ingress.emit(event(ids[EVENTS - 1], EVENTS - 1), { wait: true });
    expect(last.status).toBe('done');
    await expect.poll(async () => (await readAll<Decision>(rig.backend, 'decisions')).length, { timeout: 90_000, interval: 500 }).toBe(EVENTS);
    console.log(`JetStream batched: ${EVENTS} events decided in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const decisions = await readAll<Decision>(rig.backend, 'decisions');
    const predictions = await readPredictions(rig.backend);
    expect(predictions.length).toBe(3 * EVENTS);
    expect(new Set(predictions.map((p) => p.id)).size).toBe(3 * EVENTS);
    expect(new Set(decisions.map((d) => d.value.eventId))).toEqual(new Set(ids));
    expect(decisions.every((d) => d.value.status === 'decided' && Object.keys(d.value.predictions).length === 3)).toBe(true);

    // Every event is in the log once, and every partition is committed up to its head.
    const heads = await rig.inbound.partitions('ride_started');
    expect([...heads.keys()]).toEqual([0, 1, 2, 3]);
    expect([...heads.values()].reduce((n, h) => n + h.last, 0)).toBe(EVENTS);
    await expect.poll(async () => [...(await rig.inbound.partitions('ride_started')).values()].every((h) => h.committed === h.last), { timeout: 30_000 }).toBe(true);

    // Re-sent events are found in the log and answered from the decision stream (find by id).
    const again = await inParallel(ids.slice(0, RESENT), 100, (id) => ingress.emit(event(id, 1), { wait: true }));
    expect(again.every((r) => r.status === 'done' && r.decision.eventId === r.eventId)).toBe(true);
    const offsets = new Map(accepted.map((r) => [r.eventId, `${r.partition}:${r.offset}`]));
    expect(again.every((r) => offsets.get(r.eventId) === `${r.partition}:${r.offset}`)).toBe(true);
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await readAll(rig.backend, 'decisions')).length).toBe(EVENTS);
    expect((await readPredictions(rig.backend)).length).toBe(3 * EVENTS);
    expect([...(await rig.inbound.partitions('ride_started')).values()].reduce((n, h) => n + h.last, 0)).toBe(EVENTS);
  });

  it('decides events sharing a partition key in emit order', async () => {
    const key = uniqueName('key');
    const ids = Array.from({ length: 100 }, (_, i) => `${key}-${String(i).padStart(3, '0')}`);
    for (const id of ids) await ingress.emit({ id, type: 'ride_started', payload: { ride: ride(3), ride_id: key } });
    const mine = async () => (await readAll<Decision>(rig.backend, 'decisions')).filter((d) => d.value.eventId.startsWith(key)).map((d) => d.value.eventId);
    await expect.poll(async () => (await mine()).length, { timeout: 30_000, interval: 250 }).toBe(100);
    expect(await mine()).toEqual(ids);
  });
});

describe('batched fan-out on JetStream: bad input', () => {
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
    expect(bad.status === 'done' && bad.decision.status).toBe('rejected');
    for (const id of ids.filter((_, i) => i !== 10)) expect(byId.get(id)!.status === 'done' && (byId.get(id) as { decision: Decision }).decision.status).toBe('decided');
    const { rows } = await env.pool.query('SELECT reason FROM dead_letters WHERE event_type = $1 AND event_id = $2', ['ride_started', ids[10]]);
    expect(rows[0].reason).toMatch(/PULocationID|DOLocationID|trip_distance/);
    const predictions = await readPredictions(rig.backend);
    expect(predictions.filter((p) => p.value.eventId === ids[10])).toHaveLength(0);
    expect(predictions.filter((p) => p.value.eventId.startsWith(`${tag}-`))).toHaveLength(60);
  });
});

describe('the JetStream inbound log', () => {
  it('appends idempotently with dense offsets, reads ranges, commits forward only, finds and wakes', async () => {
    const namespace = uniqueName('inb');
    const log = NatsInboundLog.connect(NATS, namespace);
    try {
      const time = new Date().toISOString();
      // Ids with characters that separate subject tokens.
      const ids = ['a.b', 'c:d', 'e-f_g', 'h.i.j'];
      const first = await Promise.all(ids.map((id, i) => log.append('ride_started', 2, { id, type: 'ride_started', payload: { ride_id: id, n: i }, time })));
      expect(first.map((a) => a.created)).toEqual([true, true, true, true]);
      expect(first.map((a) => a.offset).sort()).toEqual([1, 2, 3, 4]);
      const again = await log.append('ride_started', 2, { id: 'c:d', type: 'ride_started', payload: { ride_id: 'other' }, time });
      expect(again).toEqual({ partition: 2, offset: first[1].offset, created: false });
      await log.append('ride_started', 0, { id: 'z', type: 'ride_started', payload: {}, time, callbackUrl: 'http://127.0.0.1/cb' });

      expect(await log.head('ride_started', 2)).toEqual({ last: 4, committed: 0 });
      expect(await log.head('ride_started', 7)).toEqual({ last: 0, committed: 0 });
      const range = await log.readPayloads('ride_started', 2, 2, 3, 'n');
      expect(range.map((r) => r.offset)).toEqual([2, 3]);
      const byOffset = new Map(first.map((a, i) => [a.offset, i]));
      expect(range.map((r) => r.id)).toEqual([ids[byOffset.get(2)!], ids[byOffset.get(3)!]]);
      expect(range.map((r) => r.value)).toEqual([byOffset.get(2), byOffset.get(3)]);
      expect((await log.readPayloads('ride_started', 2, 1, 99)).length).toBe(4);
      expect(await log.readMeta('ride_started', 0, 1, 1)).toEqual([{ offset: 1, id: 'z', value: { time, callbackUrl: 'http://127.0.0.1/cb' } }]);

      await log.commit('ride_started', 2, 3);
      await Promise.all([log.commit('ride_started', 2, 2), log.commit('ride_started', 2, 1)]);
      expect((await log.head('ride_started', 2)).committed).toBe(3);
      const parts = await log.partitions('ride_started');
      expect(parts).toEqual(
        new Map([
          [0, { last: 1, committed: 0 }],
          [2, { last: 4, committed: 3 }],
        ]),
      );
      expect(await log.partitions('ride_ended')).toEqual(new Map());
      expect(await log.find('ride_started', 'h.i.j')).toEqual({ partition: 2, offset: first[3].offset });
      expect(await log.find('ride_started', 'nope')).toBeUndefined();

      // A waiter wakes on an append, well before its timeout.
      const started = Date.now();
      const waiting = log.waitForEvents('ride_started', 2, 4, 10_000);
      setTimeout(() => void log.append('ride_started', 2, { id: 'late', type: 'ride_started', payload: {}, time }), 200);
      expect((await waiting).last).toBe(5);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect((await log.waitForEvents('ride_started', 2, 5, 300)).last).toBe(5);

      // Past the Nats-Msg-Id duplicate window, the event's own subject still keeps it once.
      await (await jetstreamManager(nc)).streams.add({ name: `${namespace}_in_ride_started_5`, subjects: [`${namespace}.in.ride_started.5.>`], duplicate_window: nanos(300) });
      const kept = await log.append('ride_started', 5, { id: 'k.1', type: 'ride_started', payload: {}, time });
      await new Promise((r) => setTimeout(r, 1_500));
      expect(await log.append('ride_started', 5, { id: 'k.1', type: 'ride_started', payload: { again: true }, time })).toEqual({ ...kept, created: false });
      expect((await log.head('ride_started', 5)).last).toBe(1);

      await log.destroy();
      expect(await log.partitions('ride_started')).toEqual(new Map());
    } finally {
      await log.destroy().catch(() => {});
      await log.close();
    }
  });
});

describe('the JetStream stream backend', () => {
  it('keeps a stream made with the old single subject working, and finds records by id', async () => {
    const namespace = uniqueName('old');
    const names = natsNames(namespace, 'decisions');
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: names.stream, subjects: [names.subject], duplicate_window: nanos(300) });
    await jetstream(nc).publish(names.subject, JSON.stringify({ old: true }), { msgID: 'old-1' });
    const backend = await NatsStreamBackend.connect(NATS, namespace);
    try {
      let woken = 0;
      const unwatch = await backend.watch('decisions', () => woken++);
      expect((await backend.append('decisions', 'new.1', { n: 1 })).created).toBe(true);
      expect(await backend.append('decisions', 'new.1', { n: 2 })).toEqual({ offset: 2, value: { n: 1 }, created: false });
      expect((await jsm.streams.info(names.stream)).config.subjects).toEqual([names.subject, names.records]);
      expect((await backend.read('decisions', 0, 10)).map((r) => [r.offset, r.id])).toEqual([
        [1, 'old-1'],
        [2, 'new.1'],
      ]);
      expect(await backend.head('decisions')).toBe(2);
      // Past the duplicate window, the record's own subject still keeps it once.
      await new Promise((r) => setTimeout(r, 1_500));
      expect(await backend.append('decisions', 'new.1', { n: 3 })).toEqual({ offset: 2, value: { n: 1 }, created: false });
      expect(await backend.head('decisions')).toBe(2);
      const ids = Array.from({ length: 300 }, (_, i) => `r:${i}`);
      await Promise.all(ids.map((id, i) => backend.append('decisions', id, { n: i })));
      const found = await backend.find<{ n: number }>('decisions', [...ids, 'new.1', 'missing']);
      expect(found.size).toBe(301);
      expect(found.get('r:7')).toEqual({ n: 7 });
      expect(found.get('new.1')).toEqual({ n: 1 });
      await expect.poll(() => woken).toBeGreaterThan(0);
      unwatch();
    } finally {
      await backend.destroy();
      await backend.close();
    }
  });
});
