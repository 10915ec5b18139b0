// NATS JetStream (127.0.0.1:4222): the prediction and decision streams on JetStream, and the
// bridge that turns published events into decisions exactly once, even when it is restarted
// mid-stream and events are published twice.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBridge } from '../../src/streaming/bridge.ts';
import { emitEvent } from '../../src/streaming/emit.ts';
import type { Decision, PredictionRecord } from '../../src/streaming/types.ts';
import { openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { inParallel, openStreamRig, readAll, registerRideModels, ride, rideRoute, type StreamTestRig } from './stream-env.ts';

let env: TestEnv;
let rig: StreamTestRig;
let nc: NatsConnection;
const eventStreams: string[] = [];
beforeAll(async () => {
  env = await openTestEnv();
  const models = await registerRideModels(env);
  rig = await openStreamRig(env, (tag) => ({ ride_started: rideRoute(models, tag, { required: true }) }), { backend: 'nats' });
  nc = await connect({ servers: '127.0.0.1:4222' });
});
afterAll(async () => {
  const jsm = nc ? await jetstreamManager(nc) : undefined;
  for (const s of eventStreams) await jsm?.streams.delete(s).catch(() => {});
  await nc?.drain();
  await rig?.close();
  await env?.close();
});

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('JetStream streams', () => {
  it('holds one decision and three predictions per event; re-sent events add nothing', async () => {
    const batch = uniqueName('js');
    const ids = Array.from({ length: 50 }, (_, i) => `${batch}-${i}`);
    const emit = (id: string) =>
      emitEvent(env.client, { id, type: 'ride_started', payload: { ride: ride(ids.indexOf(id)) } }, { taskQueue: rig.taskQueue, wait: true, waitMs: 60_000 });
    await inParallel(ids, 25, emit);
    await inParallel(ids.slice(0, 10), 10, emit);
    const decisions = await readAll<Decision>(rig.backend, 'decisions');
    const predictions = await readAll<PredictionRecord>(rig.backend, 'predictions');
    expect(decisions.map((d) => d.value.eventId).sort()).toEqual([...ids].sort());
    expect(predictions.length).toBe(150);
    expect(new Set(predictions.map((p) => p.id)).size).toBe(150);
    expect(decisions.every((d) => d.id === `ride_started:${d.value.eventId}`)).toBe(true);
  });
});

describe('JetStream bridge', () => {
  it('decides every published event exactly once, across a bridge restart and duplicate publishes', async () => {
    const name = uniqueName('events').replace(/-/g, '_');
    const subject = `${name}.ride_started`;
    eventStreams.push(name);
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name, subjects: [subject] });
    const js = jetstream(nc);
    const batch = uniqueName('br');
    const ids = Array.from({ length: 200 }, (_, i) => `${batch}-${i}`);
    const publishAll = async (list: string[]) => {
      for (const [i, id] of list.entries()) await js.publish(subject, JSON.stringify({ id, type: 'ride_started', payload: { ride: ride(i) } }));
    };
    await publishAll(ids);
    // The same events again (no Nats-Msg-Id, so JetStream keeps them): the bridge must not decide them twice.
    await publishAll(ids.slice(0, 30));
    // A message that is not an event is dead-lettered, not retried forever.
    await js.publish(subject, 'not json');

    const options = { natsUrl: '127.0.0.1:4222', stream: name, subject, durable: 'bridge', ingress: rig.ingress(), pool: env.pool, concurrency: 16 };
    const mine = async () => (await readAll<Decision>(rig.backend, 'decisions')).filter((d) => d.value.eventId.startsWith(batch));

    const first = await startBridge(options);
    await until(async () => first.started() >= 40, 'the first bridge to start 40 events');
    await first.stop();
    const second = await startBridge(options);
    await until(async () => (await mine()).length >= 200, '200 decisions');
    // Let redeliveries and duplicates drain before counting.
    await until(async () => {
      const info = await jsm.consumers.info(name, 'bridge');
      return info.num_ack_pending === 0 && info.num_pending === 0;
    }, 'the bridge to drain');
    await second.stop();

    const decisions = await mine();
    expect(decisions.length).toBe(200);
    expect(new Set(decisions.map((d) => d.value.eventId))).toEqual(new Set(ids));
    const { rows } = await env.pool.query("SELECT reason FROM dead_letters WHERE source = 'bridge' AND event_id LIKE $1", [`${name}-%`]);
    expect(rows).toEqual([{ reason: 'the message is not JSON' }]);
  });
});
