// Starting the partition workflows of batched mode. Idempotent: the workflow id is derived
// from (namespace, event type, partition), so any number of workers and producers may call it
// and exactly one workflow runs per partition. A partition workflow that was terminated is
// started again and resumes from the partition's committed offset; one running on another
// task queue is moved to the caller's.
import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { streamPartition } from '../../workflows/stream-partition.ts';
import { EVENT_TYPE, PARTITION } from '../../workflows/search-attributes.ts';
import type { InboundLog } from './inbound-log.ts';
import { partitionWorkflowId } from './partition-types.ts';
import type { Routing } from './routing.ts';

export interface PartitionStartOptions {
  /** The main task queue: the partition workflows and their claim/decide activities run there. */
  taskQueue: string;
  /** The stream namespace (MLDEPLOY_STREAM_NAMESPACE). */
  namespace: string;
  inbound: InboundLog;
}

/**
 * Ensures a workflow for each partition of the event type: 0..partitions-1, plus any partition
 * that already holds events (after P shrank, those still drain). Returns the workflow ids.
 */
export async function ensurePartitionWorkflows(client: Client, eventType: string, partitions: number, options: PartitionStartOptions): Promise<string[]> {
  const existing = await options.inbound.partitions(eventType);
  const wanted = new Set<number>([...Array(partitions).keys(), ...existing.keys()]);
  return Promise.all(
    [...wanted].map(async (partition) => {
      const workflowId = partitionWorkflowId(options.namespace, eventType, partition);
      const start = (workflowIdConflictPolicy: 'USE_EXISTING' | 'TERMINATE_EXISTING') =>
        client.workflow.start<typeof streamPartition>('streamPartition', {
          workflowId,
          taskQueue: options.taskQueue,
          args: [{ eventType, partition, namespace: options.namespace }],
          workflowIdConflictPolicy,
          workflowIdReusePolicy: 'ALLOW_DUPLICATE',
          typedSearchAttributes: [
            { key: EVENT_TYPE, value: eventType },
            { key: PARTITION, value: partition },
          ],
        });
      try {
        await start('USE_EXISTING');
      } catch (err) {
        if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      }
      // A partition workflow left on another task queue (MLDEPLOY_TASK_QUEUE changed, or a
      // deployment that is gone) would wait there for ever: move it to this one. Its state is in
      // the log (the committed offset), and batches in flight are claimed again idempotently.
      const running = await client.workflow.getHandle(workflowId).describe();
      if (running.status.name === 'RUNNING' && running.taskQueue !== options.taskQueue) await start('TERMINATE_EXISTING');
      return workflowId;
    }),
  );
}

/** Every batched event type of the routing, each with its partition workflows ensured. */
export async function ensureBatchedRoutes(client: Client, routing: Routing, options: PartitionStartOptions): Promise<string[]> {
  const batched = Object.entries(routing.events).filter(([, route]) => route.mode === 'batched');
  const ids = await Promise.all(batched.map(([type, route]) => ensurePartitionWorkflows(client, type, route.partitions, options)));
  return ids.flat();
}
