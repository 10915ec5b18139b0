// Where every producer path hands events in (POST /v1/events, emitEvent callers, `mldeploy
// emit`, the JetStream bridge). The routing picks the mode per event type:
// - per-event: the event starts its own workflow (emit.ts);
// - batched: the event is appended to the inbound log, and the append's commit is the
//   acknowledgement: a producer never waits for Temporal. The type's partition workflows are
//   ensured at its first event in this process. Waiting for the decision goes through the
//   decision stream.
import type { Client } from '@temporalio/client';
import type { Resources } from '../resources.ts';
import { log } from '../log.ts';
import type { StreamBackend } from './backend.ts';
import { callbackRefusal } from './callback.ts';
import { DecisionWaiter } from './decision-waiter.ts';
import { emitEvent, type EmitResult } from './emit.ts';
import { EventError, parseEvent, type EmitInput } from './event.ts';
import { partitionOf, type InboundLog } from './inbound-log.ts';
import { partitionWorkflowId } from './partition-types.ts';
import { ensurePartitionWorkflows } from './partitions.ts';
import { loadRouting, type RouteConfig, type Routing } from './routing.ts';
import { decisionRecordId, type Decision, type StreamEvent } from './types.ts';

/** How long a read of the routing file serves emits before it is read again. */
const ROUTING_REFRESH_MS = 1_000;

/** The inbound log cannot take the event (its database is down): HTTP answers 503. */
export class IngressUnavailableError extends Error {
  override name = 'IngressUnavailableError';
}

export interface IngressDeps {
  client: Client;
  /** See EmitOptions.eagerClient (per-event mode). */
  eagerClient?: Client;
  /** The main task queue. */
  taskQueue: string;
  /** The stream namespace: it names the inbound logs and the partition workflows. */
  namespace: string;
  routingFile: string;
  backend: StreamBackend;
  inbound: InboundLog;
  /** Longest wait for a decision. */
  waitMs: number;
  callbackHosts?: readonly string[];
}

export type BatchedEmitResult = EmitResult & { partition?: number; offset?: number };

export class EventIngress {
  private routing?: { at: number; value: Promise<Routing> };
  private readonly ensured = new Map<string, Promise<unknown>>();
  private readonly waiter: DecisionWaiter;

  constructor(private readonly deps: IngressDeps) {
    this.waiter = new DecisionWaiter(deps.backend);
  }

  private currentRouting(): Promise<Routing> {
    const now = Date.now();
    if (!this.routing || now - this.routing.at >= ROUTING_REFRESH_MS) {
      const value = loadRouting(this.deps.routingFile);
      value.catch(() => (this.routing = undefined));
      this.routing = { at: now, value };
    }
    return this.routing.value;
  }

  async emit(input: EmitInput | StreamEvent, options: { wait?: boolean; waitMs?: number } = {}): Promise<BatchedEmitResult> {
    const event = parseEvent(input);
    const route = (await this.currentRouting()).events[event.type];
    if (route?.mode !== 'batched') {
      // Per-event mode, and unknown types (their workflow rejects them with the reason).
      return emitEvent(this.deps.client, event, {
        taskQueue: this.deps.taskQueue,
        wait: options.wait,
        waitMs: options.waitMs ?? this.deps.waitMs,
        eagerClient: this.deps.eagerClient,
        callbackHosts: this.deps.callbackHosts,
      });
    }
    return this.emitBatched(event, route, options);
  }

  private async emitBatched(event: StreamEvent, route: RouteConfig, options: { wait?: boolean; waitMs?: number }): Promise<BatchedEmitResult> {
    const refusal = event.callbackUrl ? callbackRefusal(event.callbackUrl, this.deps.callbackHosts) : undefined;
    if (refusal) throw new EventError(`invalid event: ${refusal}`);
    const partition = partitionOf(event, route.partitions, route.partitionKey);
    const decisionId = decisionRecordId(event.type, event.id);
    // Interest is registered before the append, so a decision made at once is not missed.
    const expected = options.wait ? await this.waiter.expect(decisionId) : undefined;
    let stored;
    try {
      stored = await this.deps.inbound.append(event.type, partition, event);
    } catch (err) {
      expected?.cancel();
      throw new IngressUnavailableError(`the inbound event log cannot take events right now: ${(err as Error).message}`);
    }
    this.ensurePartitions(event.type, route.partitions);
    const base = {
      eventId: event.id,
      type: event.type,
      workflowId: partitionWorkflowId(this.deps.namespace, event.type, stored.partition),
      partition: stored.partition,
      offset: stored.offset,
    };
    if (!expected) return { status: 'accepted', ...base };
    const waitMs = options.waitMs ?? this.deps.waitMs;
    let decision: Decision | undefined;
    if (!stored.created) decision = (await this.deps.backend.find<Decision>('decisions', [decisionId])).get(decisionId);
    decision ??= await expected.wait(waitMs);
    expected.cancel();
    return decision ? { status: 'done', ...base, decision } : { status: 'pending', ...base, waitedMs: waitMs };
  }

  /** Starts the type's partition workflows once per process (again after a failure); never awaited by producers. */
  private ensurePartitions(type: string, partitions: number): void {
    const key = `${type}/${partitions}`;
    if (this.ensured.has(key)) return;
    const ensuring = ensurePartitionWorkflows(this.deps.client, type, partitions, { taskQueue: this.deps.taskQueue, namespace: this.deps.namespace, inbound: this.deps.inbound });
    this.ensured.set(key, ensuring);
    ensuring.catch((err) => {
      this.ensured.delete(key);
      log.warn({ eventType: type, err: (err as Error).message }, 'could not start the partition workflows yet; the next event tries again');
    });
  }

  close(): void {
    this.waiter.close();
  }
}

/** The ingress of a process: its Temporal client, stream backend, inbound log and configuration. */
export async function ingressFor(resources: Pick<Resources, 'config' | 'stack' | 'streaming' | 'inbound'>, eagerClient?: Client): Promise<EventIngress> {
  const { config } = resources;
  return new EventIngress({
    client: await resources.stack.client(),
    eagerClient,
    taskQueue: config.taskQueue,
    namespace: config.streaming.namespace,
    routingFile: config.streaming.routingFile,
    backend: await resources.streaming.backend(),
    inbound: resources.inbound,
    waitMs: config.streaming.waitMs,
    callbackHosts: config.streaming.callbackHosts,
  });
}
