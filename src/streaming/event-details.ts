// What mldeploy knows of one event, wherever it is kept: its place in the inbound log (batched
// mode) or its workflow (per-event mode), its predictions and decision (from the streams, by
// record id) and its dead letter. Read-only; `mldeploy events show` prints it.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Pool } from '../db/pool.ts';
import type { StreamBackend } from './backend.ts';
import type { InboundLog } from './inbound-log.ts';
import { partitionWorkflowId } from './partition-types.ts';
import { findBatchChain } from './prediction-batches.ts';
import type { Routing } from './routing.ts';
import { decisionRecordId, eventWorkflowId, predictionRecordId, type Decision, type ModelId, type PredictionRecord } from './types.ts';

export interface EventDetails {
  eventType: string;
  eventId: string;
  /** Where the event went: the inbound log (batched) or a workflow of its own (per-event). */
  mode: 'batched' | 'per-event';
  /** Batched: the event's place in the inbound log and whether its partition has committed past it. */
  log?: { partition: number; offset: number; committedOffset: number; committed: boolean; workflowId: string };
  /** Per-event: the event's workflow and its status (RUNNING, COMPLETED, …). */
  workflow?: { workflowId: string; runId: string; status: string; startTime: string; closeTime: string | null };
  predictions: Array<{ consumer: string; model: ModelId; prediction: number; time: string }>;
  decision: Decision | null;
  deadLetter: { reason: string; source: string; createdAt: string } | null;
}

export class UnknownEventError extends Error {
  override name = 'UnknownEventError';
}

export interface EventDetailsDeps {
  pool: Pool;
  backend: StreamBackend;
  inbound: InboundLog;
  /** The stream namespace (names the partition workflows). */
  namespace: string;
  routing: Routing;
  /** Looks up per-event workflows; without it, only the log, streams and dead letters are read. */
  client?: Client;
}

async function eventWorkflow(client: Client, workflowId: string): Promise<EventDetails['workflow']> {
  try {
    const d = await client.workflow.getHandle(workflowId).describe();
    return { workflowId, runId: d.runId, status: d.status.name, startTime: d.startTime.toISOString(), closeTime: d.closeTime?.toISOString() ?? null };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

/** The event's details; throws UnknownEventError when no part of mldeploy has heard of it. */
export async function eventDetails(deps: EventDetailsDeps, eventType: string, eventId: string): Promise<EventDetails> {
  const decisionId = decisionRecordId(eventType, eventId);
  const [place, decisions, deadLetters] = await Promise.all([
    deps.inbound.find(eventType, eventId),
    deps.backend.find<Decision>('decisions', [decisionId]),
    deps.pool.query('SELECT reason, source, created_at FROM dead_letters WHERE event_type = $1 AND event_id = $2', [eventType, eventId]),
  ]);
  const decision = decisions.get(decisionId) ?? null;

  // The consumers of today's routing, and any the decision names (the routing may have changed since).
  const consumers = new Set<string>(deps.routing.events[eventType]?.consumers.map((c) => c.name) ?? []);
  for (const name of Object.keys(decision?.predictions ?? {})) consumers.add(name);
  for (const name of decision?.missing ?? []) consumers.add(name);
  const ids = [...consumers].map((c) => predictionRecordId(eventType, eventId, c));
  const found = ids.length === 0 ? new Map<string, PredictionRecord>() : await deps.backend.find<PredictionRecord>('predictions', ids);
  let predictions = ids
    .map((id) => found.get(id))
    .filter((p): p is PredictionRecord => p !== undefined)
    .map((p) => ({ consumer: p.consumer, model: p.model, prediction: p.prediction, time: p.time }));

  let log: EventDetails['log'];
  let workflow: EventDetails['workflow'];
  if (place) {
    const head = await deps.inbound.head(eventType, place.partition);
    // Batched mode keeps a consumer's predictions per range: the decision names the range;
    // an undecided event's range is on the chain after the committed offset.
    const from = decision?.range?.from ?? (head.committed < place.offset ? head.committed + 1 : undefined);
    if (predictions.length === 0 && from !== undefined) {
      const chains = await findBatchChain(deps.backend, { eventType, partition: place.partition }, [...consumers], from, place.offset);
      predictions = [...chains.values()].flatMap((chain) =>
        chain.flatMap((r) => {
          const i = r.offsets.indexOf(place.offset);
          return i < 0 ? [] : [{ consumer: r.consumer, model: r.model, prediction: r.predictions[i], time: r.time }];
        }),
      );
    }
    log = {
      partition: place.partition,
      offset: place.offset,
      committedOffset: head.committed,
      committed: head.committed >= place.offset,
      workflowId: partitionWorkflowId(deps.namespace, eventType, place.partition),
    };
  } else if (deps.client) {
    workflow = await eventWorkflow(deps.client, eventWorkflowId(eventType, eventId));
  }

  const letter = deadLetters.rows[0];
  if (!log && !workflow && !decision && predictions.length === 0 && !letter) {
    throw new UnknownEventError(
      `no event '${eventId}' of type '${eventType}': it is not in the inbound log, the prediction or decision streams, the dead letters${deps.client ? ' or Temporal' : ''}`,
    );
  }
  const mode = log ? 'batched' : workflow ? 'per-event' : deps.routing.events[eventType]?.mode === 'batched' ? 'batched' : 'per-event';
  return {
    eventType,
    eventId,
    mode,
    ...(log ? { log } : {}),
    ...(workflow ? { workflow } : {}),
    predictions,
    decision,
    deadLetter: letter ? { reason: letter.reason, source: letter.source, createdAt: new Date(letter.created_at).toISOString() } : null,
  };
}
