// The streaming HTTP routes (on a bare fastify app with the plugin) and the durable
// subscriber: emitting over HTTP, pages and SSE of the streams, clear 4xx answers, and a
// subscriber that resumes from its stored offset after a restart without missing a record.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredRecord } from '../../src/streaming/backend.ts';
import { Client } from '@temporalio/client';
import { emitEvent, startEvent } from '../../src/streaming/emit.ts';
import { parseEvent } from '../../src/streaming/event.ts';
import { createStreamingActivities } from '../../activities/streaming.ts';
import { ModelCache } from '../../src/registry/runtime.ts';
import { streamingRoutes } from '../../src/streaming/http.ts';
import { subscribe } from '../../src/streaming/subscriber.ts';
import type { Decision } from '../../src/streaming/types.ts';
import { openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { inParallel, openStreamRig, registerRideModels, ride, rideRoute, type StreamTestRig } from './stream-env.ts';

let env: TestEnv;
let rig: StreamTestRig;
let app: FastifyInstance;
beforeAll(async () => {
  env = await openTestEnv();
  const models = await registerRideModels(env);
  rig = await openStreamRig(env, (tag) => ({ ride_started: rideRoute(models, tag, { required: true }) }));
  app = Fastify();
  await app.register(async (child) => streamingRoutes(child, { ingress: rig.ingress({ waitMs: 30_000 }), backend: rig.backend }));
  await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app?.close();
  await rig?.close();
  await env?.close();
});

describe('POST /v1/events', () => {
  it('emits the course event and, with wait=true, answers with the decision; the same id again gives the same answer', async () => {
    const id = uniqueName('http');
    const body = { id, type: 'ride_started', payload: { ride: { PULocationID: 130, DOLocationID: 205, trip_distance: 3.66 }, ride_id: 256 } };
    const first = await app.inject({ method: 'POST', url: '/v1/events?wait=true', payload: body });
    expect(first.statusCode).toBe(200);
    const result = first.json();
    expect(result.status).toBe('done');
    expect(result.decision).toMatchObject({ eventId: id, eventType: 'ride_started', status: 'decided', missing: [] });
    expect(Object.keys(result.decision.predictions).sort()).toEqual(['duration', 'fare', 'tip']);
    const again = await app.inject({ method: 'POST', url: '/v1/events?wait=true', payload: body });
    expect(again.json()).toEqual(result);
  });

  it('starts eagerly on the worker in this process when given a client on its connection, and still processes an id once', async () => {
    const eagerClient = new Client({ connection: env.connection });
    const event = parseEvent({ id: uniqueName('eager'), type: 'ride_started', payload: { ride: ride(3) } });
    const first = await startEvent(env.client, event, rig.taskQueue, eagerClient);
    expect(first.eagerlyStarted).toBe(true);
    const decision = await first.result();
    expect(decision).toMatchObject({ eventId: event.id, status: 'decided', missing: [] });
    const again = await startEvent(env.client, event, rig.taskQueue, eagerClient);
    expect(again.eagerlyStarted).toBe(false);
    expect(await again.result()).toEqual(decision);
    // Without a worker behind the connection for that queue, the server falls back to its task queue.
    const elsewhere = await startEvent(
      env.client,
      parseEvent({ id: uniqueName('eager'), type: 'ride_started', payload: { ride: ride(4) } }),
      uniqueName('no-local-worker'),
      eagerClient,
    );
    expect(elsewhere.eagerlyStarted).toBe(false);
    await elsewhere.terminate('test over');
  });

  it('without wait, accepts at once (202) with the workflow id; a generated id when none is given', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/events', payload: { type: 'ride_started', payload: { ride: ride(2) } } });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toMatchObject({ status: 'accepted', type: 'ride_started' });
    expect(res.json().workflowId).toBe(`event-ride_started-${res.json().eventId}`);
  });

  it.each([
    [{ type: 'ride_started' }, /payload/],
    [{ type: 'Ride Started', payload: {} }, /type: must be lower case/],
    [{ id: 'a b', type: 'ride_started', payload: {} }, /id: must be 1-128 letters/],
    [{ type: 'ride_started', payload: {}, callbackUrl: 'ftp://x' }, /callbackUrl/],
    [{ type: 'ride_started', payload: {}, extra: 1 }, /extra/],
  ])('rejects %j with 400 and the reason', async (body, message) => {
    const res = await app.inject({ method: 'POST', url: '/v1/events', payload: body });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(message);
  });

  it('rejects a bad wait flag with 400', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/events?wait=maybe', payload: { type: 'ride_started', payload: {} } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(/wait must be true or false/);
  });
});

describe('GET /v1/streams/{name}', () => {
  it('pages through predictions and decisions by offset', async () => {
    const batch = uniqueName('page');
    await inParallel([0, 1, 2, 3, 4], 5, (i) =>
      emitEvent(env.client, { id: `${batch}-${i}`, type: 'ride_started', payload: { ride: ride(i) } }, { taskQueue: rig.taskQueue, wait: true }),
    );
    const seen: StoredRecord<Decision>[] = [];
    let after = 0;
    for (;;) {
      const res = await app.inject({ method: 'GET', url: `/v1/streams/decisions?after=${after}&limit=2` });
      expect(res.statusCode).toBe(200);
      const page = res.json();
      if (page.records.length === 0) break;
      expect(page.records.length).toBeLessThanOrEqual(2);
      seen.push(...page.records);
      after = page.next;
    }
    const mine = seen.filter((r) => r.value.eventId.startsWith(batch));
    expect(mine.map((r) => r.value.eventId).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `${batch}-${i}`));
    expect(seen.every((r, i) => i === 0 || r.offset > seen[i - 1].offset)).toBe(true);
    const predictions = await app.inject({ method: 'GET', url: '/v1/streams/predictions?limit=1000' });
    const mineP = predictions.json().records.filter((r: StoredRecord<{ eventId: string }>) => r.value.eventId.startsWith(batch));
    expect(mineP.length).toBe(15);
  });

  it('answers 404 for an unknown stream and 400 for a bad offset', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/streams/nope' })).statusCode).toBe(404);
    const bad = await app.inject({ method: 'GET', url: '/v1/streams/decisions?after=-1' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatch(/after must be a non-negative integer/);
  });

  it('streams new decisions as Server-Sent Events, from the given offset', async () => {
    const head = (await app.inject({ method: 'GET', url: '/v1/streams/decisions?after=0&limit=1000' })).json().next as number;
    const abort = new AbortController();
    const { port } = app.server.address() as AddressInfo;
    const response = await fetch(`http://127.0.0.1:${port}/v1/streams/decisions?after=${head}`, { headers: { accept: 'text/event-stream' }, signal: abort.signal });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const id = uniqueName('sse');
    await emitEvent(env.client, { id, type: 'ride_started', payload: { ride: ride(9) } }, { taskQueue: rig.taskQueue, wait: true });
    const reader = response.body!.getReader();
    let text = '';
    while (!text.includes(id)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    abort.abort();
    const event = text.split('\n\n').find((block) => block.includes(id))!;
    expect(event).toMatch(/^id: \d+\nevent: decisions\ndata: /m);
    const data = JSON.parse(event.split('data: ')[1]);
    expect(data.offset).toBeGreaterThan(head);
    expect(data.value.eventId).toBe(id);
  });
});

describe('SSE and shutdown', () => {
  it('closing the server ends open event streams instead of waiting for their clients', async () => {
    const other = Fastify();
    await other.register(async (child) => streamingRoutes(child, { ingress: rig.ingress({ waitMs: 1_000 }), backend: rig.backend }));
    await other.listen({ host: '127.0.0.1', port: 0 });
    const { port } = other.server.address() as AddressInfo;
    const response = await fetch(`http://127.0.0.1:${port}/v1/streams/predictions`, { headers: { accept: 'text/event-stream' } });
    const reader = response.body!.getReader();
    await reader.read();
    await other.close();
    for (;;) if ((await reader.read()).done) break;
  });
});

describe('callback URL', () => {
  it('POSTs the decision to the producer, retrying until the callback accepts it', async () => {
    const calls: Array<{ status: number; body: Decision; key: string | undefined }> = [];
    let delivered!: () => void;
    const done = new Promise<void>((resolve) => (delivered = resolve));
    const receiver = http.createServer((req, res) => {
      let text = '';
      req.on('data', (chunk) => (text += chunk));
      req.on('end', () => {
        // The first call fails: the activity must try again.
        const status = calls.length === 0 ? 503 : 204;
        calls.push({ status, body: JSON.parse(text), key: req.headers['idempotency-key'] as string | undefined });
        res.writeHead(status).end();
        if (status === 204) delivered();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = receiver.address() as AddressInfo;
      const id = uniqueName('cb');
      const res = await app.inject({
        method: 'POST',
        url: '/v1/events',
        payload: { id, type: 'ride_started', payload: { ride: ride(5) }, callbackUrl: `http://127.0.0.1:${port}/decisions` },
      });
      expect(res.statusCode).toBe(202);
      await done;
      expect(calls.map((c) => c.status)).toEqual([503, 204]);
      expect(calls[1].body).toMatchObject({ eventId: id, status: 'decided' });
      expect(calls[1].key).toBe(`ride_started:${id}`);
    } finally {
      receiver.close();
    }
  });

  it('with MLDEPLOY_CALLBACK_HOSTS, refuses other hosts: a 400 at emit, nothing started, and no request from the worker', async () => {
    let hits = 0;
    const receiver = http.createServer((_req, res) => {
      hits++;
      res.writeHead(204).end();
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const guarded = Fastify();
    try {
      const { port } = receiver.address() as AddressInfo;
      const url = `http://127.0.0.1:${port}/decisions`;
      const callbackHosts = ['hooks.example.com', '*.example.org'];
      await guarded.register(async (child) => streamingRoutes(child, { ingress: rig.ingress({ waitMs: 30_000, callbackHosts }), backend: rig.backend }));
      const id = uniqueName('cbdeny');
      const res = await guarded.inject({ method: 'POST', url: '/v1/events', payload: { id, type: 'ride_started', payload: { ride: ride(6) }, callbackUrl: url } });
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toBe('invalid event: callbackUrl host 127.0.0.1 is not in MLDEPLOY_CALLBACK_HOSTS');
      await expect(env.client.workflow.getHandle(`event-ride_started-${id}`).describe()).rejects.toThrow(/not found/i);

      // An event that reaches a worker another way (the JetStream bridge starts workflows
      // directly) is decided, but the worker does not call a host off the list.
      const activitiesWith = (hosts: string[]) =>
        createStreamingActivities(
          { pool: env.pool, store: env.store, models: new ModelCache(env.store, 1) },
          { routingFile: rig.routingFile, callbackHosts: hosts, backend: async () => rig.backend },
        );
      const decision = { id: 'x', eventId: 'x' } as unknown as Decision;
      await expect(activitiesWith(callbackHosts).deliverDecision({ url, decision })).rejects.toMatchObject({
        nonRetryable: true,
        message: 'callbackUrl host 127.0.0.1 is not in MLDEPLOY_CALLBACK_HOSTS',
      });
      expect(hits).toBe(0);
      await activitiesWith(['127.0.0.1']).deliverDecision({ url, decision });
      expect(hits).toBe(1);
    } finally {
      await guarded.close();
      receiver.close();
    }
  });
});

describe('durable subscriber', () => {
  it('resumes from its stored offset after a restart and misses nothing', async () => {
    const name = uniqueName('sub');
    const batch = uniqueName('subev');
    const received: StoredRecord<Decision>[] = [];
    const handle = async (records: StoredRecord<Decision>[]) => {
      received.push(...records);
    };
    const emitMany = (from: number, to: number) =>
      inParallel(
        Array.from({ length: to - from }, (_, k) => from + k),
        20,
        (i) => emitEvent(env.client, { id: `${batch}-${i}`, type: 'ride_started', payload: { ride: ride(i) } }, { taskQueue: rig.taskQueue, wait: true }),
      );
    const mine = () => new Set(received.filter((r) => r.value.eventId.startsWith(batch)).map((r) => r.value.eventId));
    const until = async (check: () => boolean) => {
      while (!check()) await new Promise((r) => setTimeout(r, 50));
    };

    let sub = subscribe<Decision>({ pool: env.pool, backend: rig.backend, stream: 'decisions', name, handle });
    await emitMany(0, 20);
    await until(() => mine().size === 20);
    await sub.stop();

    // Decisions made while the subscriber is down are delivered after it restarts.
    await emitMany(20, 40);
    const countBefore = received.length;
    sub = subscribe<Decision>({ pool: env.pool, backend: rig.backend, stream: 'decisions', name, handle });
    await until(() => mine().size === 40);
    await sub.stop();
    const afterRestart = received.slice(countBefore);
    // It started after the stored offset: nothing delivered before the stop came again.
    expect(afterRestart.every((r) => r.offset > received[countBefore - 1].offset)).toBe(true);
    expect(received.every((r, i) => i === 0 || r.offset > received[i - 1].offset)).toBe(true);
  });
});
