// A Temporal worker for mldeploy: every workflow, and activities built once per process
// (so each model version loads once per process).
import { fileURLToPath } from 'node:url';
import { Worker, type NativeConnection } from '@temporalio/worker';
import { createActivities } from '../activities/index.ts';
import type { Pool } from './db/pool.ts';
import type { Stack } from './stack/stack.ts';
import { ModelCache } from './registry/runtime.ts';
import { ModelStore } from './registry/store.ts';
import { streamingSettings } from './streaming/settings.ts';
import { createConsumerWorkers, EVENT_WORKFLOW_TUNING, selectConsumerQueues } from './streaming/workers.ts';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface WorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  pool: Pool;
  modelThreads: number;
  maxConcurrentActivities?: number;
}

export async function createWorker(opts: WorkerOptions): Promise<{ worker: Worker; models: ModelCache }> {
  const store = new ModelStore(opts.pool);
  const models = new ModelCache(store, opts.modelThreads);
  const worker = await Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    workflowsPath: WORKFLOWS_PATH,
    activities: createActivities({ pool: opts.pool, store, models }),
    // The main queue runs every event's fan-out workflow as well as the batch runs.
    ...EVENT_WORKFLOW_TUNING,
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivities ?? 8,
    // Let in-flight chunks finish on SIGTERM; a chunk that does not is retried elsewhere.
    shutdownGraceTime: '30 seconds',
  });
  return { worker, models };
}

export async function workerForStack(stack: Stack, taskQueue = stack.config.taskQueue) {
  return createWorker({
    connection: await stack.nativeConnection(),
    namespace: stack.temporal!.namespace,
    taskQueue,
    pool: stack.pool,
    modelThreads: stack.config.modelThreads,
  });
}

/**
 * Workers for the streaming consumers' task queues: the named consumers (from the routing
 * file), or all of them when names is empty. They share the given model cache.
 */
export async function consumerWorkersForStack(stack: Stack, models: ModelCache, names: string[]): Promise<{ workers: Worker[]; taskQueues: string[] }> {
  const settings = streamingSettings(stack.config.streaming, stack.pool);
  const taskQueues = await selectConsumerQueues(settings.routingFile, names);
  const deps = { connection: await stack.nativeConnection(), namespace: stack.temporal!.namespace, pool: stack.pool, store: new ModelStore(stack.pool), models, settings };
  return { workers: await createConsumerWorkers(deps, taskQueues), taskQueues };
}

/** Runs a worker in this process while `work` runs. */
export async function withWorker<T>(stack: Stack, work: () => Promise<T>): Promise<T> {
  const { worker, models } = await workerForStack(stack);
  try {
    return await worker.runUntil(work);
  } finally {
    await models.release();
  }
}
