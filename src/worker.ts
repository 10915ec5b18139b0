// Temporal workers for mldeploy, built on a process's resources (src/resources.ts): the main
// task queue runs every workflow with all activities; each streaming consumer's task queue
// runs that consumer's predictions. All of them share the process's models and stream backend.
import { fileURLToPath } from 'node:url';
import { Worker, type NativeConnection } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities/index.ts';
import type { Resources } from './resources.ts';
import type { StreamingSettings } from './streaming/settings.ts';
import type { InboundLog } from './streaming/inbound-log.ts';
import { ensureBatchedRoutes } from './streaming/partitions.ts';
import { loadRouting } from './streaming/routing.ts';
import { log } from './log.ts';
import { StreamInputSampler } from './monitoring/sampling.ts';
import { createConsumerWorkers, createPartitionActivityWorker, EVENT_WORKFLOW_TUNING, selectConsumerQueues, type StreamingWorkerDeps } from './streaming/workers.ts';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/** What a worker is built from: a connection, and the process's pool, models and stream backend. */
export interface WorkerDeps extends ActivityDeps {
  connection: NativeConnection;
  namespace: string;
  settings: StreamingSettings;
  /** The inbound event log of batched fan-out. */
  inbound: InboundLog;
}

export async function createWorker(deps: WorkerDeps, taskQueue: string, opts: { maxConcurrentActivities?: number } = {}): Promise<Worker> {
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue,
    workflowsPath: WORKFLOWS_PATH,
    activities: createActivities(deps, deps.settings),
    // The main queue runs every event's fan-out workflow as well as the batch runs.
    ...EVENT_WORKFLOW_TUNING,
    // Batch chunks and batched partitions' claim, decide and idle wait share these slots. More
    // slots let one worker take a whole run's chunks while others stand idle (measured with 32).
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivities ?? 8,
    // Let in-flight chunks finish on SIGTERM; a chunk that does not is retried elsewhere.
    shutdownGraceTime: '30 seconds',
    // Heartbeats reach the server (and a cancellation reaches a chunk) within 2 s, not 80% of the heartbeat timeout.
    maxHeartbeatThrottleInterval: '2 seconds',
  });
}

/** The worker dependencies of a process: its Temporal worker connection and its resources. */
export async function workerDeps(resources: Resources): Promise<WorkerDeps & StreamingWorkerDeps> {
  const { stack, pool, store, models, streaming, inbound, config } = resources;
  if (!stack.temporal) throw new Error('a worker needs Temporal, but the stack was opened without it');
  return {
    connection: await stack.nativeConnection(),
    namespace: stack.temporal.namespace,
    pool,
    store,
    models,
    settings: streaming,
    inbound,
    monitoring: config.monitoring,
    streamSampler: new StreamInputSampler(pool, config.monitoring.sampleRate),
  };
}

/**
 * The main task queue's worker (every workflow, every activity) and, beside it, the worker of
 * the batched partition workflows' own activity queue.
 */
export async function mainWorkers(resources: Resources, taskQueue = resources.config.taskQueue): Promise<Worker[]> {
  const deps = await workerDeps(resources);
  return [await createWorker(deps, taskQueue), await createPartitionActivityWorker(deps, taskQueue)];
}

/**
 * Workers for the streaming consumers' task queues: the named consumers (from the routing
 * file), or all of them when names is empty.
 */
export async function consumerWorkers(resources: Resources, names: string[]): Promise<{ workers: Worker[]; taskQueues: string[] }> {
  const taskQueues = await selectConsumerQueues(resources.streaming.routingFile, names);
  return { workers: await createConsumerWorkers(await workerDeps(resources), taskQueues), taskQueues };
}

/** Runs the main workers in this process while `work` runs. */
export async function withWorker<T>(resources: Resources, work: () => Promise<T>): Promise<T> {
  const [main, ...others] = await mainWorkers(resources);
  const running = others.map((w) => w.run());
  try {
    return await main.runUntil(work);
  } finally {
    for (const w of others) w.shutdown();
    await Promise.allSettled(running);
  }
}

/**
 * Starts the partition workflows of the routing's batched event types (idempotent: one
 * workflow per partition however many workers call it). A failure is logged, not fatal: the
 * type's first event in a producer process tries again.
 */
export async function ensureBatchedPartitions(resources: Resources, taskQueue = resources.config.taskQueue): Promise<string[]> {
  try {
    const routing = await loadRouting(resources.streaming.routingFile);
    return await ensureBatchedRoutes(await resources.stack.client(), routing, { taskQueue, namespace: resources.config.streaming.namespace, inbound: resources.inbound });
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not start the batched partition workflows yet');
    return [];
  }
}
