// Seeing the fan-out work, on a real Temporal dev server and PostgreSQL: the partition
// workflow's `status` query, `mldeploy events show` and `mldeploy streams status` run as a
// user runs them (`node bin/mldeploy.js …` against this rig's routing file and namespace).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionStatusQuery } from '../../workflows/stream-partition.ts';
import type { EventDetails } from '../../src/streaming/event-details.ts';
import type { EventIngress } from '../../src/streaming/ingress.ts';
import { partitionOf } from '../../src/streaming/inbound-log.ts';
import { partitionWorkflowId } from '../../src/streaming/partition-types.ts';
import { ensurePartitionWorkflows } from '../../src/streaming/partitions.ts';
import type { StreamsStatus } from '../../src/streaming/streams-status.ts';
import type { Decision } from '../../src/streaming/types.ts';
import { openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { inParallel, openStreamRig, readAll, registerRideModels, ride, rideRoute, type StreamTestRig } from './stream-env.ts';

const exec = promisify(execFile);
const PARTITIONS = 3;

let env: TestEnv;
let rig: StreamTestRig;
let ingress: EventIngress;
let dataDir: string;
/** Workflows this file starts outside the rig (terminated at the end). */
const strays: string[] = [];

beforeAll(async () => {
  env = await openTestEnv();
  const models = await registerRideModels(env);
  rig = await openStreamRig(env, (tag) => ({
    ride_started: { ...rideRoute(models, tag, { required: true }), mode: 'batched', partitions: PARTITIONS, partitionKey: 'ride_id' },
    ride_requested: { ...rideRoute(models, tag, { required: true }), mode: 'per-event' },
    // Batched, but its partition workflows run on a queue no worker polls: their query cannot be answered.
    ride_idle: { ...rideRoute(models, tag, { required: true }), mode: 'batched', partitions: 1 },
  }));
  ingress = rig.ingress();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-status-'));
  fs.chmodSync(dataDir, 0o755);
});
afterAll(async () => {
  for (const id of strays)
    await env.client.workflow
      .getHandle(id)
      .terminate('test over')
      .catch(() => undefined);
  await rig?.close();
  await env?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

async function mldeploy(args: string[]) {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['bin/mldeploy.js', ...args], {
      env: {
        ...process.env,
        DATABASE_URL: env.databaseUrl,
        TEMPORAL_ADDRESS: env.temporalAddress,
        MLDEPLOY_DATA_DIR: dataDir,
        MLDEPLOY_LOG_LEVEL: 'warn',
        MLDEPLOY_ROUTING_FILE: rig.routingFile,
        MLDEPLOY_STREAM_NAMESPACE: rig.tag,
        MLDEPLOY_TASK_QUEUE: rig.taskQueue,
      },
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function decisionsFor(prefix: string): Promise<number> {
  return (await readAll<Decision>(rig.backend, 'decisions')).filter((d) => d.value.eventId.startsWith(prefix)).length;
}

/** Emits `count` valid ride_started events (ids prefix-0 …) and waits until all are decided. */
async function emitRides(prefix: string, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  await inParallel(ids, 50, (id) => ingress.emit({ id, type: 'ride_started', payload: { ride: ride(ids.indexOf(id)), ride_id: id } }));
  await expect.poll(() => decisionsFor(prefix), { timeout: 60_000, interval: 250 }).toBe(count);
  return ids;
}

describe("the partition workflow's status query", () => {
  it('answers with the committed offset, which advances, and lag 0 once the partition is drained', async () => {
    const first = await emitRides(uniqueName('q1'), 60);
    const partition = partitionOf({ id: first[0], payload: { ride_id: first[0] } }, PARTITIONS, 'ride_id');
    const handle = env.client.workflow.getHandle(partitionWorkflowId(rig.tag, 'ride_started', partition));
    // The commit follows the decisions' append: poll until the workflow has caught up.
    await expect.poll(async () => (await handle.query(partitionStatusQuery)).lag, { timeout: 15_000, interval: 200 }).toBe(0);
    const before = await handle.query(partitionStatusQuery);
    const logHead = await rig.inbound.head('ride_started', partition);
    expect(before).toMatchObject({ eventType: 'ride_started', partition, lag: 0, head: logHead.last, committed: logHead.last, batchesInFlight: 0 });
    expect(before.decided).toBeGreaterThan(0);
    expect(before.lastBatchSize).toBeGreaterThan(0);
    expect(before.eventsPerSecond).toBeGreaterThan(0);

    // More events on the same partition: its committed offset moves on.
    const key = first[0];
    const more = Array.from({ length: 25 }, (_, i) => `${uniqueName('q2')}-${i}`);
    for (const id of more) await ingress.emit({ id, type: 'ride_started', payload: { ride: ride(1), ride_id: key } });
    await expect.poll(async () => (await handle.query(partitionStatusQuery)).committed, { timeout: 30_000, interval: 200 }).toBeGreaterThanOrEqual(before.committed + 25);
    await expect.poll(async () => (await handle.query(partitionStatusQuery)).lag, { timeout: 15_000, interval: 200 }).toBe(0);
    const after = await handle.query(partitionStatusQuery);
    expect(after.committed).toBe((await rig.inbound.head('ride_started', partition)).committed);
    expect(after.decided).toBeGreaterThanOrEqual(before.decided + 25);
  });
});

describe('mldeploy events show', () => {
  it('prints a batched event: its partition and offset, its three predictions and its decision', async () => {
    const [id] = await emitRides(uniqueName('show'), 1);
    const place = await rig.inbound.find('ride_started', id);
    await expect.poll(async () => (await rig.inbound.head('ride_started', place!.partition)).committed >= place!.offset, { timeout: 15_000 }).toBe(true);
    const result = await mldeploy(['events', 'show', 'ride_started', id]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const shown = JSON.parse(result.stdout) as EventDetails;
    expect(shown).toMatchObject({
      eventType: 'ride_started',
      eventId: id,
      mode: 'batched',
      log: { partition: place!.partition, offset: place!.offset, committed: true, workflowId: partitionWorkflowId(rig.tag, 'ride_started', place!.partition) },
      decision: { eventId: id, status: 'decided', action: expect.any(String) },
      deadLetter: null,
    });
    expect(shown.predictions.map((p) => p.consumer).sort()).toEqual(['duration', 'fare', 'tip']);
    expect(shown.predictions.every((p) => typeof p.prediction === 'number' && p.model.version >= 1)).toBe(true);
    expect(shown.decision!.predictions).toEqual(Object.fromEntries(shown.predictions.map((p) => [p.consumer, p.prediction])));
  });

  it('prints a dead-lettered event with its reason and its rejected decision', async () => {
    const id = uniqueName('bad');
    const result = await ingress.emit({ id, type: 'ride_started', payload: { ride: { PULocationID: 'nowhere', DOLocationID: 5 }, ride_id: id } }, { wait: true });
    expect(result.status).toBe('done');
    const shown = JSON.parse((await mldeploy(['events', 'show', 'ride_started', id])).stdout) as EventDetails;
    expect(shown.mode).toBe('batched');
    expect(shown.predictions).toEqual([]);
    expect(shown.decision).toMatchObject({ status: 'rejected', action: null });
    expect(shown.deadLetter?.reason).toMatch(/PULocationID|DOLocationID|trip_distance/);
    expect(shown.deadLetter?.source).toBe('workflow');
  });

  it('prints a per-event event with its workflow', async () => {
    const id = uniqueName('pe');
    const emitted = await ingress.emit({ id, type: 'ride_requested', payload: { ride: ride(7) } }, { wait: true });
    expect(emitted.status).toBe('done');
    const shown = JSON.parse((await mldeploy(['events', 'show', 'ride_requested', id])).stdout) as EventDetails;
    expect(shown).toMatchObject({
      mode: 'per-event',
      workflow: { workflowId: `event-ride_requested-${id}`, status: 'COMPLETED' },
      decision: { status: 'decided' },
      deadLetter: null,
    });
    expect(shown.log).toBeUndefined();
    expect(shown.predictions).toHaveLength(3);
  });

  it('says so, with a non-zero exit, for an event nobody has seen', async () => {
    const result = await mldeploy(['events', 'show', 'ride_started', 'no-such-event']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^error: no event 'no-such-event' of type 'ride_started'/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('mldeploy streams status', () => {
  it('prints lag and throughput per event type, partition and consumer', async () => {
    const prefix = uniqueName('st');
    await emitRides(prefix, 90);
    // Drained: every partition has committed its head.
    await expect.poll(async () => [...(await rig.inbound.partitions('ride_started')).values()].every((h) => h.committed === h.last), { timeout: 15_000, interval: 200 }).toBe(true);
    // ride_idle's one partition workflow, on a queue no worker polls.
    strays.push(...(await ensurePartitionWorkflows(env.client, 'ride_idle', 1, { taskQueue: `${rig.tag}-nobody`, namespace: rig.tag, inbound: rig.inbound })));

    const result = await mldeploy(['streams', 'status', '--query-timeout', '1500']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout) as StreamsStatus;
    expect(status).toMatchObject({ namespace: rig.tag, backend: 'postgres', windowSeconds: 60, notes: [] });
    const byType = new Map(status.eventTypes.map((t) => [t.eventType, t]));

    const started = byType.get('ride_started')!;
    expect(started).toMatchObject({ mode: 'batched', partitions: PARTITIONS, lag: 0 });
    expect(started.partitionDetails!.map((p) => p.partition)).toEqual([0, 1, 2]);
    const heads = await rig.inbound.partitions('ride_started');
    for (const p of started.partitionDetails!) {
      const head = heads.get(p.partition)!;
      expect(p).toMatchObject({ head: head.last, committed: head.committed, lag: 0, workflowId: partitionWorkflowId(rig.tag, 'ride_started', p.partition) });
      expect(p.workflow).toMatchObject({ state: 'running', committed: head.committed, lag: 0 });
    }
    // Everything this file decided was decided within the last minute (give or take a slow machine).
    expect(started.decisionsLastMinute).toBeGreaterThanOrEqual(90);
    expect(started.decisionsPerSecond).toBeGreaterThan(0);
    expect(started.consumers.map((c) => c.consumer)).toEqual(['duration', 'fare', 'tip']);
    for (const c of started.consumers) {
      expect(c.taskQueue).toBe(`${rig.tag}-consumer-${c.consumer}`);
      expect(c.predictionsLastMinute).toBeGreaterThanOrEqual(90);
    }

    expect(byType.get('ride_requested')).toMatchObject({ mode: 'per-event', consumers: expect.any(Array) });
    expect(byType.get('ride_requested')!.partitionDetails).toBeUndefined();

    const idle = byType.get('ride_idle')!;
    expect(idle).toMatchObject({ mode: 'batched', partitions: 1, lag: 0, decisionsLastMinute: 0 });
    expect(idle.partitionDetails![0].workflow).toMatchObject({ state: 'unreachable', reason: expect.stringMatching(/no answer within 1500 ms/) });
  });

  it('names a partition whose workflow was never started', async () => {
    // A fresh namespace: nothing has started its partition workflows.
    const result = await exec(process.execPath, ['bin/mldeploy.js', 'streams', 'status'], {
      env: {
        ...process.env,
        DATABASE_URL: env.databaseUrl,
        TEMPORAL_ADDRESS: env.temporalAddress,
        MLDEPLOY_DATA_DIR: dataDir,
        MLDEPLOY_LOG_LEVEL: 'warn',
        MLDEPLOY_ROUTING_FILE: rig.routingFile,
        MLDEPLOY_STREAM_NAMESPACE: uniqueName('fresh'),
      },
    });
    const status = JSON.parse(result.stdout) as StreamsStatus;
    const started = status.eventTypes.find((t) => t.eventType === 'ride_started')!;
    expect(started.partitionDetails!.every((p) => p.workflow.state === 'not started' && p.head === 0 && p.lag === 0)).toBe(true);
    expect(started.decisionsLastMinute).toBe(0);
  });
});
