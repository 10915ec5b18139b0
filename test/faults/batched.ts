// The batched-mode workload of the fault suite (issue 11): a deployment whose ride_started
// route is batched, a producer that appends events through the real producer path
// (EventIngress, as POST /v1/events and `mldeploy emit` do) at a fixed rate, and exact
// checks of what the partition workflows wrote: one decision per event, one prediction per
// (event, consumer), ids compared with the inbound log.
import fs from 'node:fs';
import path from 'node:path';
import { createPool, type Pool } from '../../src/db/pool.ts';
import { PostgresInboundLog } from '../../src/streaming/inbound-log.ts';
import { EventIngress } from '../../src/streaming/ingress.ts';
import { partitionWorkflowId } from '../../src/streaming/partition-types.ts';
import { perEvent } from '../../src/streaming/prediction-batches.ts';
import type { RoutingInput } from '../../src/streaming/routing.ts';
import { streamingSettings } from '../../src/streaming/settings.ts';
import { uniqueName } from '../helpers.ts';
import type { FaultStack } from './stack.ts';
import type { Deployment } from './workers.ts';
import { CONSUMERS, EVENT_TYPE, ride, sleep } from './workload.ts';

export const PARTITIONS = 4;

/**
 * As createDeployment (workload.ts), with ride_started batched over PARTITIONS partitions by
 * ride_id: every consumer required, 20 attempts with backoff up to 5 s (about 80 s), so every
 * event must end with three predictions whatever the fault.
 */
export function createBatchedDeployment(dir: string): Deployment {
  const tag = uniqueName('bfault');
  const routing: RoutingInput = {
    events: {
      [EVENT_TYPE]: {
        mode: 'batched',
        partitions: PARTITIONS,
        partitionKey: 'ride_id',
        consumers: CONSUMERS.map((name) => ({
          name,
          model: `${name === 'duration' ? 'trip-duration' : name}@production`,
          taskQueue: `${tag}-consumer-${name}`,
          features: 'ride',
          required: true,
          timeoutMs: 10_000,
          maxAttempts: 20,
        })),
        decision: {
          rules: [{ when: { duration: { gt: 90 } }, action: 'review', reason: 'expected duration above 90 minutes' }],
          default: 'accept',
        },
      },
    },
  };
  const routingFile = path.join(dir, `${tag}-routing.json`);
  fs.writeFileSync(routingFile, JSON.stringify(routing, null, 2));
  return { taskQueue: `${tag}-main`, routingFile, streamNamespace: tag };
}

export const batchedEventId = (deployment: Deployment, i: number) => `${deployment.streamNamespace}-${i}`;

export interface ProducerStats {
  /** Events whose append committed (the producer's acknowledgement). */
  accepted: number;
  /** Emits that failed (the log could not take writes) and were sent again. */
  retried: number;
}

/** A producer process's ingress on the fault stack: its own pool, stream backend and inbound log. */
export interface Producer {
  stats: ProducerStats;
  /**
   * Emits events from..to-1 in an open loop at `rate` per second: each event is sent at its
   * scheduled time whether or not earlier ones are acknowledged; a failed emit is sent again
   * 500 ms later (the event id makes that safe). Resolves when every event is acknowledged.
   */
  emit(from: number, to: number, rate: number): Promise<void>;
  close(): Promise<void>;
}

export function openProducer(stack: FaultStack, deployment: Deployment): Producer {
  const pool = createPool(stack.databaseUrl, 4, 'mldeploy-faults-producer');
  const settings = streamingSettings({ routingFile: deployment.routingFile, backend: 'postgres', namespace: deployment.streamNamespace, natsUrl: '' }, pool);
  const inbound = new PostgresInboundLog(pool, deployment.streamNamespace);
  let ingress: EventIngress | undefined;
  const stats: ProducerStats = { accepted: 0, retried: 0 };
  const ready = settings.backend().then((backend) => {
    ingress = new EventIngress({
      client: stack.client,
      taskQueue: deployment.taskQueue,
      namespace: deployment.streamNamespace,
      routingFile: deployment.routingFile,
      backend,
      inbound,
      waitMs: 30_000,
    });
  });
  const send = async (i: number): Promise<void> => {
    const id = batchedEventId(deployment, i);
    for (;;) {
      try {
        await ingress!.emit({ id, type: EVENT_TYPE, payload: { ride: ride(i), ride_id: `ride-${i}` } });
        stats.accepted++;
        return;
      } catch {
        stats.retried++;
        await sleep(500);
      }
    }
  };
  return {
    stats,
    async emit(from, to, rate) {
      await ready;
      const started = Date.now();
      const sends: Promise<void>[] = [];
      let next = from;
      while (next < to) {
        const due = from + Math.floor(((Date.now() - started) / 1000) * rate);
        for (; next < Math.min(due, to); next++) sends.push(send(next));
        await sleep(10);
      }
      await Promise.all(sends);
    },
    async close() {
      ingress?.close();
      await inbound.close();
      await settings.close();
      await pool.end();
    },
  };
}

export interface BatchedCheck {
  inbound: number;
  predictions: number;
  distinctEventConsumers: number;
  decisions: number;
  distinctDecidedEvents: number;
  decidedWithAllThree: number;
  /** Inbound events without a decision, and decisions of no inbound event. */
  undecided: number;
  unknownDecisions: number;
  /** Predictions of no inbound event. */
  unknownPredictions: number;
  /** Decisions whose prediction for a consumer differs from that consumer's stored record. */
  mismatches: number;
  deadLetters: number;
  /** Partitions whose committed offset is short of their head. */
  partitionsBehind: number;
}

/**
 * Reads the deployment's inbound log, predictions and decisions once (plain indexed scans by
 * log and stream) and compares them here: with several scenarios' records in the tables, SQL
 * anti-joins on JSON fields were planned as nested loops and ran for minutes.
 */
export async function checkBatchedStream(pool: Pool, deployment: Deployment): Promise<BatchedCheck> {
  const log = `${deployment.streamNamespace}.${EVENT_TYPE}`;
  const inbound = new Set<string>((await pool.query('SELECT event_id FROM inbound_events WHERE log = $1', [log])).rows.map((r) => r.event_id));
  // Batched mode stores each consumer's predictions of a range as one record: one entry per event here.
  const { rows: records } = await pool.query('SELECT record FROM stream_records WHERE stream = $1', [`${deployment.streamNamespace}.predictions`]);
  const p = records.flatMap((r) => perEvent(r.record).map((e) => ({ event: e.eventId, consumer: e.consumer, prediction: e.prediction })));
  const { rows: d } = await pool.query(
    `SELECT record->>'eventId' AS event, record->>'status' AS status, record->'missing' AS missing, record->'predictions' AS predictions FROM stream_records WHERE stream = $1`,
    [`${deployment.streamNamespace}.decisions`],
  );
  const predicted = new Map<string, number>(p.map((r) => [`${r.event}/${r.consumer}`, r.prediction as number]));
  const decided = new Set<string>(d.map((r) => r.event));
  let complete = 0;
  let mismatches = 0;
  for (const r of d) {
    const predictions = (r.predictions ?? {}) as Record<string, number>;
    if (r.status === 'decided' && Array.isArray(r.missing) && r.missing.length === 0 && CONSUMERS.every((c) => c in predictions) && Object.keys(predictions).length === 3)
      complete++;
    for (const c of CONSUMERS) {
      const stored = predicted.get(`${r.event}/${c}`);
      if (stored !== undefined && stored !== predictions[c]) mismatches++;
    }
  }
  const dl = (await pool.query(`SELECT count(*)::int AS n FROM dead_letters WHERE event_type = $1 AND event_id LIKE $2`, [EVENT_TYPE, `${deployment.streamNamespace}-%`])).rows[0];
  const heads = (await pool.query('SELECT count(*) FILTER (WHERE committed_offset < last_offset)::int AS n FROM inbound_heads WHERE log = $1', [log])).rows[0];
  return {
    inbound: inbound.size,
    predictions: p.length,
    distinctEventConsumers: predicted.size,
    decisions: d.length,
    distinctDecidedEvents: decided.size,
    decidedWithAllThree: complete,
    undecided: [...inbound].filter((id) => !decided.has(id)).length,
    unknownDecisions: d.filter((r) => !inbound.has(r.event)).length,
    unknownPredictions: p.filter((r) => !inbound.has(r.event)).length,
    mismatches,
    deadLetters: dl.n,
    partitionsBehind: heads.n,
  };
}

/** Committed offset of each partition (null while the database is away). */
export async function committedOffsets(pool: Pool, deployment: Deployment): Promise<Map<number, number> | null> {
  try {
    const { rows } = await pool.query('SELECT partition, committed_offset FROM inbound_heads WHERE log = $1', [`${deployment.streamNamespace}.${EVENT_TYPE}`]);
    return new Map(rows.map((r) => [r.partition as number, r.committed_offset as number]));
  } catch {
    return null;
  }
}

/**
 * Which workers (identities, `<pid>@<host>`) completed a partition workflow's workflow tasks
 * at or after `sinceMs` (epoch ms; 0: the whole run), in history order: the identities of its
 * WorkflowTaskCompleted events in the current run (the latest of a continue-as-new chain).
 */
export async function partitionWorkers(stack: FaultStack, deployment: Deployment, partition: number, sinceMs = 0): Promise<string[]> {
  const handle = stack.client.workflow.getHandle(partitionWorkflowId(deployment.streamNamespace, EVENT_TYPE, partition));
  const history = await handle.fetchHistory();
  const identities: string[] = [];
  for (const event of history.events ?? []) {
    const done = event.workflowTaskCompletedEventAttributes;
    const at = event.eventTime?.seconds ? Number(String(event.eventTime.seconds)) * 1000 : 0;
    if (done?.identity && at >= sinceMs) identities.push(done.identity);
  }
  return identities;
}
