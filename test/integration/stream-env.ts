// A streaming fan-out set-up of its own for each test file: the three example models under
// fresh names, a routing file with unique task queues, a stream namespace of its own, the
// event worker and one worker per consumer (each can be stopped and started again).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode, type Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { ModelCache } from '../../src/registry/runtime.ts';
import { WORKFLOWS_PATH } from '../../src/worker.ts';
import type { StreamBackend } from '../../src/streaming/backend.ts';
import { PostgresInboundLog, type InboundLog } from '../../src/streaming/inbound-log.ts';
import type { NatsStreamBackend } from '../../src/streaming/nats-backend.ts';
import { NatsInboundLog } from '../../src/streaming/nats-inbound-log.ts';
import { EventIngress } from '../../src/streaming/ingress.ts';
import { streamingSettings, type StreamingSettings } from '../../src/streaming/settings.ts';
import { createConsumerWorkers, createEventWorker, createPartitionActivityWorker, type StreamingWorkerDeps } from '../../src/streaming/workers.ts';
import type { RouteInput } from '../../src/streaming/routing.ts';
import { perEvent, type PredictionBatchRecord } from '../../src/streaming/prediction-batches.ts';
import type { PredictionRecord } from '../../src/streaming/types.ts';
import { registerExample, uniqueName, type TestEnv } from '../helpers.ts';

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
export function workflowBundle() {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} } });
  return bundle;
}

export interface ExampleModels {
  duration: string;
  fare: string;
  tip: string;
}

export async function registerRideModels(env: TestEnv): Promise<ExampleModels> {
  const [duration, fare, tip] = await Promise.all([registerExample(env, 'trip-duration'), registerExample(env, 'fare'), registerExample(env, 'tip')]);
  return { duration: `${duration.name}@production`, fare: `${fare.name}@production`, tip: `${tip.name}@production` };
}

/** The ride_started route of config/routing.json, pointed at this run's models and queues. */
export function rideRoute(models: ExampleModels, tag: string, tip: { required: boolean; waitMs?: number; maxAttempts?: number } = { required: false, waitMs: 5_000 }): RouteInput {
  const queue = (name: string) => `${tag}-consumer-${name}`;
  return {
    consumers: [
      { name: 'duration', model: models.duration, taskQueue: queue('duration'), features: 'ride', required: true, timeoutMs: 10_000, maxAttempts: 3 },
      { name: 'fare', model: models.fare, taskQueue: queue('fare'), features: 'ride', required: true, timeoutMs: 10_000, maxAttempts: 3 },
      {
        name: 'tip',
        model: models.tip,
        taskQueue: queue('tip'),
        features: 'ride',
        timeoutMs: 10_000,
        maxAttempts: tip.maxAttempts ?? 2,
        required: tip.required,
        waitMs: tip.waitMs,
      },
    ],
    decision: {
      rules: [
        { when: { duration: { gt: 90 } }, action: 'review', reason: 'expected duration above 90 minutes' },
        { when: { tip: { gte: 5 } }, action: 'priority_dispatch', reason: 'expected tip of $5 or more' },
      ],
      default: 'accept',
    },
  };
}

export interface ConsumerWorker {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface StreamTestRig {
  tag: string;
  taskQueue: string;
  routingFile: string;
  settings: StreamingSettings;
  backend: StreamBackend;
  consumers: Record<string, ConsumerWorker>;
  deps: StreamingWorkerDeps;
  /** PostgreSQL's, or JetStream's (on the backend's connection) when the backend is 'nats'. */
  inbound: InboundLog;
  /** An event ingress on this rig (as a producer-facing process builds one); closed with the rig. */
  ingress(options?: { waitMs?: number; callbackHosts?: readonly string[] }): EventIngress;
  close(): Promise<void>;
}

function runner(create: () => Promise<Worker>): ConsumerWorker {
  let current: { worker: Worker; running: Promise<void> } | undefined;
  return {
    async start() {
      if (current) return;
      const worker = await create();
      current = { worker, running: worker.run() };
    },
    async stop() {
      if (!current) return;
      const { worker, running } = current;
      current = undefined;
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}

export async function openStreamRig(
  env: TestEnv,
  routes: (tag: string) => Record<string, RouteInput>,
  options: { backend?: 'postgres' | 'nats'; startConsumers?: boolean; skipConsumers?: string[] } = {},
): Promise<StreamTestRig> {
  const tag = uniqueName('st');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-routing-'));
  const routingFile = path.join(dir, 'routing.json');
  const events = routes(tag);
  fs.writeFileSync(routingFile, JSON.stringify({ events }, null, 2));
  const settings = streamingSettings({ routingFile, backend: options.backend ?? 'postgres', namespace: tag, natsUrl: '127.0.0.1:4222' }, env.pool);
  const models = new ModelCache(env.store, 1);
  const inbound =
    options.backend === 'nats' ? new NatsInboundLog(async () => ((await settings.backend()) as NatsStreamBackend).connection, tag) : new PostgresInboundLog(env.pool, tag);
  const deps: StreamingWorkerDeps = { connection: env.connection, namespace: 'default', pool: env.pool, store: env.store, models, settings, inbound };
  const taskQueue = `${tag}-events`;
  const eventWorker = runner(async () => createEventWorker(deps, taskQueue, { workflowBundle: await workflowBundle() }));
  const partitionWorker = runner(() => createPartitionActivityWorker(deps, taskQueue));
  await Promise.all([eventWorker.start(), partitionWorker.start()]);
  const consumers: Record<string, ConsumerWorker> = {};
  const queues = new Map<string, string>();
  for (const route of Object.values(events)) for (const c of route.consumers) queues.set(c.name, c.taskQueue!);
  for (const [name, queue] of queues) if (!options.skipConsumers?.includes(name)) consumers[name] = runner(async () => (await createConsumerWorkers(deps, [queue]))[0]);
  if (options.startConsumers !== false) await Promise.all(Object.values(consumers).map((c) => c.start()));
  const backend = await settings.backend();
  const ingresses: EventIngress[] = [];
  return {
    tag,
    taskQueue,
    routingFile,
    settings,
    backend,
    consumers,
    deps,
    inbound,
    ingress(options = {}) {
      const ingress = new EventIngress({
        client: env.client,
        taskQueue,
        namespace: tag,
        routingFile,
        backend,
        inbound,
        waitMs: options.waitMs ?? 30_000,
        callbackHosts: options.callbackHosts,
      });
      ingresses.push(ingress);
      return ingress;
    },
    async close() {
      for (const ingress of ingresses) ingress.close();
      await Promise.all([eventWorker.stop(), partitionWorker.stop(), ...Object.values(consumers).map((c) => c.stop())]);
      await models.release();
      if (inbound instanceof NatsInboundLog) await inbound.destroy();
      await inbound.close();
      if ('destroy' in backend && typeof backend.destroy === 'function') await backend.destroy();
      await backend.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Reads a whole stream of this rig (all pages). */
export async function readAll<T>(backend: StreamBackend, stream: 'predictions' | 'decisions'): Promise<Array<{ offset: number; id: string; value: T }>> {
  const all: Array<{ offset: number; id: string; value: T }> = [];
  for (;;) {
    const page = await backend.read<T>(stream, all.at(-1)?.offset ?? 0, 1_000);
    if (page.length === 0) return all;
    all.push(...page);
  }
}

/** A rig's predictions stream as one entry per event and consumer (batched mode stores them per range). */
export async function readPredictions(backend: StreamBackend): Promise<Array<{ offset: number; id: string; value: PredictionRecord }>> {
  return (await readAll<PredictionRecord | PredictionBatchRecord>(backend, 'predictions')).flatMap((r) =>
    perEvent(r.value).map((value) => ({ offset: r.offset, id: value.id, value })),
  );
}

export function ride(i: number) {
  return { PULocationID: 1 + (i % 260), DOLocationID: 1 + ((i * 7) % 260), trip_distance: 0.5 + (i % 40) * 0.7 };
}

/** Runs work over items with at most `limit` in flight. */
export async function inParallel<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await work(items[i]);
      }
    }),
  );
  return results;
}
