// Workers for the streaming fan-out. A consumer's task queue is its unit of deployment: a
// consumer worker polls one queue and runs only that consumer's predictions, so each model
// scales (or goes down) on its own. The event worker runs the fan-out workflow and the
// plan/decide activities on the main queue.
import { Worker, type NativeConnection, type WorkerOptions } from '@temporalio/worker';
import { createConsumerActivities, createStreamingActivities } from '../../activities/streaming.ts';
import { createConsumerBatchActivities, createPartitionActivities } from '../../activities/stream-partition.ts';
import { partitionActivityQueue } from './partition-types.ts';
import type { InboundLog } from './inbound-log.ts';
import type { Pool } from '../db/pool.ts';
import type { ModelCache } from '../registry/runtime.ts';
import type { ModelStore } from '../registry/store.ts';
import { consumerQueues, loadRouting, RoutingError } from './routing.ts';
import type { StreamingSettings } from './settings.ts';

/**
 * Predictions are short and mostly wait on the stream append. More slots than this only queue
 * work inside the process, where the wait counts against the attempt's timeout (and a timed
 * out attempt is retried, adding load); beyond it, tasks wait in Temporal's queue instead.
 */
const CONSUMER_CONCURRENCY = 50;

/** How a worker that runs the fan-out workflow polls and caches (`mldeploy worker` uses it too). */
export const EVENT_WORKFLOW_TUNING = {
  maxConcurrentWorkflowTaskExecutions: 50,
  // Every event is a new workflow whose first task comes from the normal (non-sticky) queue:
  // poll it as much as the sticky one, or new events queue behind two pollers.
  maxConcurrentWorkflowTaskPolls: 20,
  nonStickyToStickyPollRatio: 1,
  maxConcurrentLocalActivityExecutions: 200,
  maxCachedWorkflows: 2_000,
} satisfies Partial<WorkerOptions>;

export interface StreamingWorkerDeps {
  connection: NativeConnection;
  namespace: string;
  pool: Pool;
  store: ModelStore;
  models: ModelCache;
  settings: StreamingSettings;
  /** The inbound event log of batched mode. */
  inbound: InboundLog;
}

/** The task queues of the named consumers (all of them when names is empty), from the routing file. */
export async function selectConsumerQueues(routingFile: string, names: string[]): Promise<string[]> {
  const queues = consumerQueues(await loadRouting(routingFile));
  if (names.length === 0) return [...new Set(queues.values())];
  const unknown = names.filter((n) => !queues.has(n));
  if (unknown.length > 0) throw new RoutingError(`no consumer named ${unknown.map((n) => `'${n}'`).join(', ')} in ${routingFile} (known: ${[...queues.keys()].join(', ')})`);
  return [...new Set(names.map((n) => queues.get(n)!))];
}

export async function createConsumerWorkers(deps: StreamingWorkerDeps, taskQueues: string[], tuning: Partial<WorkerOptions> = {}): Promise<Worker[]> {
  // A consumer's queue serves both modes: single events and batches.
  const activities = { ...createConsumerActivities(deps, deps.settings), ...createConsumerBatchActivities(deps) };
  return Promise.all(
    taskQueues.map((taskQueue) =>
      Worker.create({
        connection: deps.connection,
        namespace: deps.namespace,
        taskQueue,
        activities,
        maxConcurrentActivityTaskExecutions: CONSUMER_CONCURRENCY,
        maxConcurrentActivityTaskPolls: 20,
        shutdownGraceTime: '10 seconds',
        ...tuning,
      }),
    ),
  );
}

/** The partition workflows' own activities (watch, decide, callbacks) on their queue beside `mainQueue`. */
export function createPartitionActivityWorker(deps: StreamingWorkerDeps, mainQueue: string, tuning: Partial<WorkerOptions> = {}): Promise<Worker> {
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: partitionActivityQueue(mainQueue),
    activities: createPartitionActivities(deps),
    // Per partition: one decision at a time, a watch, and callback deliveries.
    maxConcurrentActivityTaskExecutions: 50,
    shutdownGraceTime: '10 seconds',
    ...tuning,
  });
}

/** The fan-out workflow plus plan/decide/callback activities, with these streaming settings. */
export async function createEventWorker(
  deps: StreamingWorkerDeps,
  taskQueue: string,
  workflows: Pick<WorkerOptions, 'workflowsPath' | 'workflowBundle'>,
  tuning: Partial<WorkerOptions> = {},
): Promise<Worker> {
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue,
    ...workflows,
    activities: { ...createStreamingActivities(deps, deps.settings), ...createPartitionActivities(deps) },
    ...EVENT_WORKFLOW_TUNING,
    maxConcurrentActivityTaskExecutions: 50,
    shutdownGraceTime: '10 seconds',
    ...tuning,
  });
}
