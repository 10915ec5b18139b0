// What every fault scenario runs and checks: one batch run over the seeded rides and a
// stream of ride_started events fanned out to three consumers, then an exact count of
// what was written (no prediction lost, none written twice, summaries that agree).
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { startBatchRun } from '../../src/batch/client.ts';
import type { RunSummary } from '../../src/batch/scorer.ts';
import type { Pool } from '../../src/db/pool.ts';
import { RIDE_COLUMNS, ensureExampleModels } from '../../src/demo.ts';
import { ModelStore } from '../../src/registry/store.ts';
import { seedRides } from '../../src/rides/seed.ts';
import { emitEvent } from '../../src/streaming/emit.ts';
import type { RoutingInput } from '../../src/streaming/routing.ts';
import { progressQuery, type batchScoring } from '../../workflows/batch-scoring.ts';
import { uniqueName } from '../helpers.ts';
import type { FaultStack } from './stack.ts';
import type { Deployment } from './workers.ts';

export const MONTH = { month: '2024-01', from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00Z' };
export const EVENT_TYPE = 'ride_started';
export const CONSUMERS = ['duration', 'fare', 'tip'] as const;

export async function seedWorkload(stack: FaultStack, rows: number): Promise<void> {
  await ensureExampleModels(new ModelStore(stack.pool), 64 * 1024 * 1024);
  await seedRides(stack.pool, { rows, month: MONTH.month });
}

/**
 * A deployment of its own per scenario: task queues, stream namespace and a routing file.
 * Every consumer is required and waits as long as it takes (no waitMs) with retries that
 * outlast the faults (20 attempts, backoff up to 5 s: about 80 s), so every event must end
 * with three predictions. The shipped config/routing.json gives up sooner on purpose: tip
 * is optional (5 s), the others retry 3 times.
 */
export function createDeployment(dir: string): Deployment {
  const tag = uniqueName('fault');
  const routing: RoutingInput = {
    events: {
      [EVENT_TYPE]: {
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

export type BatchHandle = WorkflowHandle<typeof batchScoring>;

export async function startBatch(client: Client, deployment: Deployment, rows: number): Promise<{ job: string; handle: BatchHandle }> {
  const job = uniqueName('fault-job');
  const handle = await startBatchRun(client, deployment.taskQueue, {
    name: job,
    model: 'trip-duration@production',
    source: { table: 'ride_durations', ...RIDE_COLUMNS, actualColumn: 'duration', passthrough: ['PULocationID', 'DOLocationID'] },
    window: { from: MONTH.from, to: MONTH.to },
    chunkSize: Math.max(1_000, Math.ceil(rows / 20)),
    parallelism: 2,
  });
  return { job, handle };
}

/** Progress, or undefined while the server (or the worker answering queries) is away. */
export async function batchProgress(handle: BatchHandle) {
  return handle.query(progressQuery).catch(() => undefined);
}

/** The run's result; transport errors while a server restarts are waited out. */
export async function batchResult(handle: BatchHandle, timeoutMs: number): Promise<RunSummary> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await handle.result();
    } catch (err) {
      if (err instanceof WorkflowFailedError || Date.now() > deadline) throw err;
      await sleep(1_000);
    }
  }
}

export function ride(i: number) {
  return { PULocationID: 1 + (i % 260), DOLocationID: 1 + ((i * 7) % 260), trip_distance: 0.5 + (i % 40) * 0.7 };
}

export const eventId = (deployment: Deployment, i: number) => `${deployment.streamNamespace}-${i}`;

/**
 * Emits events from..to-1 with bounded concurrency, as a producer should: an emit that fails
 * (the server is restarting) is sent again; the event id makes that safe.
 */
export async function emitRange(client: Client, deployment: Deployment, from: number, to: number, counter: { emitted: number; retried: number }): Promise<void> {
  let next = from;
  const lane = async () => {
    while (next < to) {
      const i = next++;
      for (;;) {
        try {
          await emitEvent(client, { id: eventId(deployment, i), type: EVENT_TYPE, payload: { ride: ride(i) } }, { taskQueue: deployment.taskQueue });
          counter.emitted++;
          break;
        } catch {
          counter.retried++;
          await sleep(500);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, lane));
}

const streamKey = (deployment: Deployment, stream: 'predictions' | 'decisions') => `${deployment.streamNamespace}.${stream}`;

/** Decisions stored so far; null while the database is down. */
export async function decisionCount(pool: Pool, deployment: Deployment): Promise<number | null> {
  try {
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM stream_records WHERE stream = $1', [streamKey(deployment, 'decisions')]);
    return rows[0].n;
  } catch {
    return null;
  }
}

export interface BatchCheck {
  predictions: number;
  distinctIds: number;
  missingIds: number;
  summaryScored: number;
  runStatus: string;
  runRowsScored: number;
  chunkRowsScored: number;
  chunksUnscored: number;
}

export async function checkBatch(pool: Pool, job: string, summary: RunSummary): Promise<BatchCheck> {
  const counts = await pool.query(
    `SELECT count(*)::int AS predictions, count(DISTINCT entity_id)::int AS distinct_ids,
            (SELECT count(*)::int FROM ride_durations v WHERE v.lpep_pickup_datetime >= $2 AND v.lpep_pickup_datetime < $3
               AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.job = $1 AND p.entity_id = v.ride_id)) AS missing_ids
     FROM predictions WHERE job = $1`,
    [job, MONTH.from, MONTH.to],
  );
  const run = await pool.query(
    `SELECT r.status, r.rows_scored, sum(c.rows_scored)::int AS chunk_rows, count(*) FILTER (WHERE c.scored_at IS NULL)::int AS unscored
     FROM batch_runs r JOIN batch_chunks c USING (run_id) WHERE r.run_id = $1 GROUP BY r.status, r.rows_scored`,
    [summary.runId],
  );
  const c = counts.rows[0];
  const r = run.rows[0];
  return {
    predictions: c.predictions,
    distinctIds: c.distinct_ids,
    missingIds: c.missing_ids,
    summaryScored: summary.rowsScored,
    runStatus: r.status,
    runRowsScored: r.rows_scored,
    chunkRowsScored: r.chunk_rows,
    chunksUnscored: r.unscored,
  };
}

export interface StreamCheck {
  predictions: number;
  distinctEventConsumers: number;
  distinctPredictedEvents: number;
  decisions: number;
  distinctDecidedEvents: number;
  decidedWithAllThree: number;
  /** Decisions whose prediction for a consumer differs from that consumer's stored record. */
  mismatches: number;
  deadLetters: number;
}

export async function checkStream(pool: Pool, deployment: Deployment): Promise<StreamCheck> {
  const predictions = streamKey(deployment, 'predictions');
  const decisions = streamKey(deployment, 'decisions');
  const { rows: p } = await pool.query(
    `SELECT count(*)::int AS n, count(DISTINCT (record->>'eventId', record->>'consumer'))::int AS pairs, count(DISTINCT record->>'eventId')::int AS events
     FROM stream_records WHERE stream = $1`,
    [predictions],
  );
  const { rows: d } = await pool.query(
    `SELECT count(*)::int AS n, count(DISTINCT record->>'eventId')::int AS events,
            count(*) FILTER (WHERE record->>'status' = 'decided' AND jsonb_array_length(record->'missing') = 0
                             AND (SELECT count(*) FROM jsonb_object_keys(record->'predictions')) = 3)::int AS complete
     FROM stream_records WHERE stream = $1`,
    [decisions],
  );
  const { rows: m } = await pool.query(
    `SELECT count(*)::int AS n FROM stream_records d
     JOIN stream_records p ON p.stream = $2 AND p.record->>'eventId' = d.record->>'eventId'
     WHERE d.stream = $1 AND (d.record->'predictions'->>(p.record->>'consumer'))::float8 IS DISTINCT FROM (p.record->>'prediction')::float8`,
    [decisions, predictions],
  );
  const { rows: dl } = await pool.query(`SELECT count(*)::int AS n FROM dead_letters WHERE event_type = $1 AND event_id LIKE $2`, [EVENT_TYPE, `${deployment.streamNamespace}-%`]);
  return {
    predictions: p[0].n,
    distinctEventConsumers: p[0].pairs,
    distinctPredictedEvents: p[0].events,
    decisions: d[0].n,
    distinctDecidedEvents: d[0].events,
    decidedWithAllThree: d[0].complete,
    mismatches: m[0].n,
    deadLetters: dl[0].n,
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(250);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
