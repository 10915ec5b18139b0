// Producing events from TypeScript: start (or find) the event's workflow and, when asked,
// wait a bounded time for its decision. The workflow id is derived from the event's type
// and id, so emitting the same event again never processes it twice: a running workflow is
// reused, and a completed one is not started again; its result is returned instead.
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { eventFanout } from '../../workflows/event-fanout.ts';
import { EVENT_TYPE } from '../../workflows/search-attributes.ts';
import { callbackRefusal } from './callback.ts';
import { EventError, parseEvent, type EmitInput } from './event.ts';
import { eventWorkflowId, type Decision, type StreamEvent } from './types.ts';

export interface EmitOptions {
  /** The main task queue (where the fan-out workflow runs). */
  taskQueue: string;
  /** Wait for the decision (bounded by waitMs). */
  wait?: boolean;
  waitMs?: number;
  /**
   * A client on the NativeConnection of a worker in this process that polls taskQueue. Starts
   * go through it with eager start: the server hands the first workflow task straight to that
   * worker, saving a trip through its task queue. Waiting still uses `client`, so that
   * long-polls for results never crowd the worker's own connection.
   */
  eagerClient?: Client;
  /** Hosts a callbackUrl may name (MLDEPLOY_CALLBACK_HOSTS); undefined allows any. */
  callbackHosts?: readonly string[];
}

export type EmitResult =
  | { status: 'accepted'; eventId: string; type: string; workflowId: string }
  | { status: 'pending'; eventId: string; type: string; workflowId: string; waitedMs: number }
  | { status: 'done'; eventId: string; type: string; workflowId: string; decision: Decision };

export type EventHandle = WorkflowHandle<typeof eventFanout>;

/** A handle on `client`; eagerlyStarted tells whether this call started the workflow on a worker in this process. */
export type StartedEvent = EventHandle & { eagerlyStarted: boolean };

/** Starts the event's workflow, or finds the one already started for the same type and id. */
export async function startEvent(client: Client, event: StreamEvent, taskQueue: string, eagerClient?: Client): Promise<StartedEvent> {
  const workflowId = eventWorkflowId(event.type, event.id);
  let eagerlyStarted = false;
  try {
    const started = await (eagerClient ?? client).workflow.start<typeof eventFanout>('eventFanout', {
      workflowId,
      taskQueue,
      args: [event],
      workflowIdConflictPolicy: 'USE_EXISTING',
      // A completed event is never processed again; one that failed or was terminated may be.
      workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
      typedSearchAttributes: [{ key: EVENT_TYPE, value: event.type }],
      requestEagerStart: eagerClient !== undefined,
    });
    eagerlyStarted = started.eagerlyStarted;
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
  return Object.assign(client.workflow.getHandle<typeof eventFanout>(workflowId), { eagerlyStarted });
}

/** Waits up to waitMs for the decision; undefined when it is not there yet. */
export async function awaitDecision(client: Client, handle: EventHandle, waitMs: number): Promise<Decision | undefined> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), waitMs);
  try {
    return await client.withAbortSignal(abort.signal, () => handle.result());
  } catch (err) {
    if (abort.signal.aborted) return undefined;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

export async function emitEvent(client: Client, input: EmitInput | StreamEvent, options: EmitOptions): Promise<EmitResult> {
  const event = parseEvent(input);
  const refusal = event.callbackUrl ? callbackRefusal(event.callbackUrl, options.callbackHosts) : undefined;
  if (refusal) throw new EventError(`invalid event: ${refusal}`);
  const handle = await startEvent(client, event, options.taskQueue, options.eagerClient);
  const base = { eventId: event.id, type: event.type, workflowId: handle.workflowId };
  if (!options.wait) return { status: 'accepted', ...base };
  const waitMs = options.waitMs ?? 10_000;
  const decision = await awaitDecision(client, handle, waitMs);
  return decision ? { status: 'done', ...base, decision } : { status: 'pending', ...base, waitedMs: waitMs };
}
