// Lag and throughput of the streaming fan-out, per event type, partition and consumer, for
// `mldeploy streams status`. Read-only: the routing, the inbound log's heads, each partition
// workflow's `status` query (with a short deadline: a partition whose worker is down must not
// hang the command) and, on the PostgreSQL backend, the last minute of the streams.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Pool } from '../db/pool.ts';
import type { StreamBackend } from './backend.ts';
import type { InboundLog } from './inbound-log.ts';
import { partitionWorkflowId, type PartitionStatus } from './partition-types.ts';
import { consumerTaskQueue, type Routing } from './routing.ts';

/** The window of the per-consumer and per-type rates. */
export const RATE_WINDOW_SECONDS = 60;
/** Most stream records a rate looks back over (keeps the command cheap on a large stream). */
const RATE_SCAN_LIMIT = 1_000_000;

export type WorkflowView =
  | ({ state: 'running' } & Pick<PartitionStatus, 'committed' | 'claimed' | 'head' | 'lag' | 'eventsPerSecond' | 'lastBatchSize' | 'batchesInFlight' | 'decided'>)
  | { state: 'unreachable'; reason: string }
  | { state: 'not started' };

export interface PartitionView {
  partition: number;
  /** From inbound_heads: the last appended offset, the committed offset and the difference. */
  head: number;
  committed: number;
  lag: number;
  workflowId: string;
  workflow: WorkflowView;
}

export interface ConsumerView {
  consumer: string;
  taskQueue: string;
  /** Predictions appended in the last RATE_WINDOW_SECONDS; null when the backend cannot tell. */
  predictionsLastMinute: number | null;
  predictionsPerSecond: number | null;
}

export interface EventTypeView {
  eventType: string;
  mode: 'batched' | 'per-event';
  /** Batched: partitions configured (P). */
  partitions?: number;
  /** Batched: the sum over partitions of head - committed. */
  lag?: number;
  decisionsLastMinute: number | null;
  decisionsPerSecond: number | null;
  partitionDetails?: PartitionView[];
  consumers: ConsumerView[];
}

export interface StreamsStatus {
  namespace: string;
  backend: 'postgres' | 'nats';
  windowSeconds: number;
  eventTypes: EventTypeView[];
  notes: string[];
}

export interface StreamsStatusDeps {
  pool: Pool;
  backend: StreamBackend;
  inbound: InboundLog;
  namespace: string;
  routing: Routing;
  /** Queries the partition workflows; without it every workflow shows as unreachable. */
  client?: Client;
  /** Deadline of each partition's `status` query. */
  queryTimeoutMs?: number;
}

async function queryPartition(client: Client | undefined, workflowId: string, timeoutMs: number): Promise<WorkflowView> {
  if (!client) return { state: 'unreachable', reason: 'no Temporal connection' };
  const startedAt = Date.now();
  try {
    const s = await client.withDeadline(startedAt + timeoutMs, () => client.workflow.getHandle(workflowId).query<PartitionStatus>('status'));
    return {
      state: 'running',
      committed: s.committed,
      claimed: s.claimed,
      head: s.head,
      lag: s.lag,
      eventsPerSecond: Math.round(s.eventsPerSecond * 10) / 10,
      lastBatchSize: s.lastBatchSize,
      batchesInFlight: s.batchesInFlight,
      decided: s.decided,
    };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { state: 'not started' };
    // The client wraps the gRPC error: name the innermost cause.
    const messages: string[] = [];
    for (let e: unknown = err; e instanceof Error && messages.length < 5; e = e.cause) messages.push(e.message);
    const text = messages.join(': ') || String(err);
    return {
      state: 'unreachable',
      // A call past its deadline fails as DEADLINE_EXCEEDED or, depending on where it was, CANCELLED.
      reason: Date.now() - startedAt >= timeoutMs || /deadline/i.test(text) ? `no answer within ${timeoutMs} ms (is a worker polling the main task queue?)` : text,
    };
  }
}

/** Records per key appended to a PostgreSQL stream in the last window, keyed by a record field. */
async function recentCounts(
  pool: Pool,
  backend: StreamBackend,
  stream: 'predictions' | 'decisions',
  field: 'consumer' | 'eventType',
  eventType?: string,
): Promise<Map<string, number>> {
  const key = `${backend.namespace}.${stream}`;
  const head = await backend.head(stream);
  const params: unknown[] = [key, Math.max(0, head - RATE_SCAN_LIMIT), RATE_WINDOW_SECONDS];
  let typeFilter = '';
  if (eventType !== undefined) {
    params.push(eventType);
    typeFilter = ` AND record->>'eventType' = $4`;
  }
  const { rows } = await pool.query(
    // A batched-mode prediction record counts its predictions.
    `SELECT record->>'${field}' AS k, sum(coalesce(jsonb_array_length(record->'offsets'), 1))::int AS n FROM stream_records
     WHERE stream = $1 AND stream_offset > $2 AND appended_at > now() - make_interval(secs => $3)${typeFilter}
     GROUP BY 1`,
    params,
  );
  return new Map(rows.map((r) => [r.k as string, r.n as number]));
}

const perSecond = (n: number | null) => (n === null ? null : Math.round((n / RATE_WINDOW_SECONDS) * 10) / 10);

export async function streamsStatus(deps: StreamsStatusDeps): Promise<StreamsStatus> {
  const timeoutMs = deps.queryTimeoutMs ?? 2_000;
  const notes: string[] = [];
  const counted = deps.backend.kind === 'postgres';
  if (!counted)
    notes.push(
      'per-consumer and per-type rates are read from stream_records and are not available on the NATS backend (see mldeploy_stream_predictions_total and mldeploy_stream_decisions_total in /metrics)',
    );
  const decisions = counted ? await recentCounts(deps.pool, deps.backend, 'decisions', 'eventType') : undefined;

  const eventTypes = await Promise.all(
    Object.entries(deps.routing.events).map(async ([eventType, route]): Promise<EventTypeView> => {
      const predictions = counted ? await recentCounts(deps.pool, deps.backend, 'predictions', 'consumer', eventType) : undefined;
      const consumers = route.consumers.map((c): ConsumerView => {
        const n = predictions ? (predictions.get(c.name) ?? 0) : null;
        return { consumer: c.name, taskQueue: consumerTaskQueue(c), predictionsLastMinute: n, predictionsPerSecond: perSecond(n) };
      });
      const decided = decisions ? (decisions.get(eventType) ?? 0) : null;
      const base = { eventType, mode: route.mode, decisionsLastMinute: decided, decisionsPerSecond: perSecond(decided) };
      if (route.mode !== 'batched') return { ...base, consumers };

      const heads = await deps.inbound.partitions(eventType);
      const numbers = [...new Set([...Array(route.partitions).keys(), ...heads.keys()])].sort((a, b) => a - b);
      const partitionDetails = await Promise.all(
        numbers.map(async (partition): Promise<PartitionView> => {
          const h = heads.get(partition) ?? { last: 0, committed: 0 };
          const workflowId = partitionWorkflowId(deps.namespace, eventType, partition);
          return {
            partition,
            head: h.last,
            committed: h.committed,
            lag: Math.max(0, h.last - h.committed),
            workflowId,
            workflow: await queryPartition(deps.client, workflowId, timeoutMs),
          };
        }),
      );
      return { ...base, partitions: route.partitions, lag: partitionDetails.reduce((sum, p) => sum + p.lag, 0), partitionDetails, consumers };
    }),
  );
  return { namespace: deps.namespace, backend: deps.backend.kind, windowSeconds: RATE_WINDOW_SECONDS, eventTypes, notes };
}
