// Batch scoring end to end on a real Temporal dev server and PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ort from 'onnxruntime-node';
import { WorkflowFailedError } from '@temporalio/client';
import { startBatchRun } from '../../src/batch/client.ts';
import type { BatchJobInput } from '../../src/batch/job.ts';
import { progressQuery } from '../../workflows/batch-scoring.ts';
import { openTestEnv, registerExample, startTestWorker, uniqueName, type TestEnv } from '../helpers.ts';
import { januaryJob, ridesTable, spawnWorker, waitUntil, workerFailingAfterWrite } from './batch-support.ts';

let env: TestEnv;
let model: string;
beforeAll(async () => {
  env = await openTestEnv();
  model = (await registerExample(env, 'trip-duration')).name;
});
afterAll(async () => env.close());

function job(source: string, extra: Partial<BatchJobInput> = {}): BatchJobInput {
  return januaryJob(model, source, extra);
}

async function predictionCounts(jobName: string) {
  const { rows } = await env.pool.query('SELECT count(*)::int AS n, count(DISTINCT entity_id)::int AS distinct_ids FROM predictions WHERE job = $1', [jobName]);
  return rows[0] as { n: number; distinct_ids: number };
}

describe('batch scoring', () => {
  it('scores 100k rides exactly once, equal to direct onnxruntime output', async () => {
    const { view } = await ridesTable(env.pool, { '2024-01': 100_000 });
    const worker = await startTestWorker(env);
    try {
      const input = job(view, { chunkSize: 25_000 });
      const handle = await startBatchRun(env.client, worker.taskQueue, input);
      const summary = await handle.result();
      expect(summary).toMatchObject({ status: 'succeeded', rowsRead: 100_000, rowsScored: 100_000, rowsRejected: 0, chunks: 4 });
      expect(summary.stats!.rmse).toBeGreaterThan(0);
      expect(await predictionCounts(input.name)).toEqual({ n: 100_000, distinct_ids: 100_000 });
      expect(handle.workflowId).toBe(`batch-${input.name}-20240101T0000Z-20240201T0000Z`);

      // The same rows through onnxruntime directly, with tensors built by hand.
      const version = await env.store.resolve(model);
      const session = await ort.InferenceSession.create(await env.store.bytes(model, version.version));
      const { rows } = await env.pool.query(
        `SELECT v.ride_id, v."PULocationID" || '_' || v."DOLocationID" AS pu_do, v.trip_distance, p.prediction, p.actual, v.duration, p.passthrough
         FROM ${view} v JOIN predictions p ON p.job = $1 AND p.entity_id = v.ride_id ORDER BY v.ride_id`,
        [input.name],
      );
      expect(rows).toHaveLength(100_000);
      const out = await session.run({
        PU_DO: new ort.Tensor(
          'string',
          rows.map((r) => r.pu_do),
          [rows.length, 1],
        ),
        trip_distance: new ort.Tensor('float32', Float32Array.from(rows.map((r) => r.trip_distance)), [rows.length, 1]),
      });
      const direct = out.variable.data as Float32Array;
      let worst = 0;
      rows.forEach((r, i) => (worst = Math.max(worst, Math.abs(r.prediction - Math.min(180, Math.max(1, direct[i]))))));
      expect(worst).toBeLessThan(1e-5);
      expect(rows[0].actual).toBeCloseTo(rows[0].duration, 6);
      expect(Object.keys(rows[0].passthrough).sort()).toEqual(['DOLocationID', 'PULocationID']);
      await session.release();

      const run = await env.pool.query('SELECT status, model_version, rows_scored FROM batch_runs WHERE workflow_id = $1', [handle.workflowId]);
      expect(run.rows).toEqual([{ status: 'succeeded', model_version: version.version, rows_scored: 100_000 }]);

      // Scoring the same window again replaces its predictions and never duplicates them.
      const again = await startBatchRun(env.client, worker.taskQueue, input);
      expect((await again.result()).rowsScored).toBe(100_000);
      expect(await predictionCounts(input.name)).toEqual({ n: 100_000, distinct_ids: 100_000 });
    } finally {
      await worker.stop();
    }
  });

  it('retries a chunk that failed after writing, without duplicates', async () => {
    const { view } = await ridesTable(env.pool, { '2024-01': 30_000 });
    const taskQueue = uniqueName('tq');
    const failing = await workerFailingAfterWrite(env, taskQueue);
    const input = job(view);
    const summary = await failing.worker.runUntil(async () => (await startBatchRun(env.client, taskQueue, input)).result());
    await failing.release();
    expect(failing.injected()).toBe(3);
    expect(summary).toMatchObject({ rowsScored: 30_000, rowsRejected: 0 });
    expect(await predictionCounts(input.name)).toEqual({ n: 30_000, distinct_ids: 30_000 });
  });

  it('skips and records bad rows, and the run succeeds', async () => {
    const { table, view } = await ridesTable(env.pool, { '2024-01': 5_000 });
    const bad = await env.pool.query(
      `UPDATE ${table} SET trip_distance = CASE WHEN ride_id % 2 = 0 THEN NULL ELSE 'NaN'::float8 END
       WHERE ride_id IN (SELECT ride_id FROM ${table} ORDER BY ride_id LIMIT 7) RETURNING ride_id`,
    );
    const worker = await startTestWorker(env);
    try {
      const input = job(view);
      const summary = await (await startBatchRun(env.client, worker.taskQueue, input)).result();
      expect(summary).toMatchObject({ status: 'succeeded', rowsRead: 5_000, rowsScored: 4_993, rowsRejected: 7 });
      const rejected = await env.pool.query('SELECT entity_id, reason FROM rejected_rows WHERE job = $1 ORDER BY entity_id', [input.name]);
      expect(rejected.rows.map((r) => r.entity_id)).toEqual(bad.rows.map((r) => r.ride_id).sort((a, b) => a - b));
      for (const r of rejected.rows) expect(r.reason).toMatch(/^trip_distance (is null|must be a finite number, got NaN)$/);
    } finally {
      await worker.stop();
    }
  });

  it.each([
    ['an unknown model', (view: string) => ({ model: 'no-such-model@production', view }), /model no-such-model@production does not exist/],
    ['a missing source table', () => ({ view: 'no_such_table' }), /source table no_such_table does not exist/],
    ['a window where every row is rejected', (view: string) => ({ view, every: true }), /every row in the window was rejected \(50 rows\)/],
  ])('fails the run with a clear, non-retryable error for %s', async (_title, make, message) => {
    const { table, view } = await ridesTable(env.pool, { '2024-01': 50 });
    const spec = make(view) as { model?: string; view: string; every?: boolean };
    if (spec.every) await env.pool.query(`UPDATE ${table} SET "PULocationID" = NULL`);
    const worker = await startTestWorker(env);
    try {
      const input = job(spec.view, spec.model ? { model: spec.model } : {});
      const handle = await startBatchRun(env.client, worker.taskQueue, input);
      const failure = await handle.result().catch((e) => e);
      expect(failure).toBeInstanceOf(WorkflowFailedError);
      expect(String(failure.cause?.cause?.message ?? failure.cause?.message)).toMatch(message);
      // Non-retryable: one attempt, not a retry loop.
      const history = await handle.fetchHistory();
      const starts = history.events!.filter((e) => e.activityTaskStartedEventAttributes);
      expect(starts.every((e) => Number(e.activityTaskStartedEventAttributes!.attempt) === 1)).toBe(true);
    } finally {
      await worker.stop();
    }
  });

  it('rejects invalid identifiers before touching SQL', async () => {
    const worker = await startTestWorker(env);
    try {
      const input = job('rides; DROP TABLE rides', {});
      await expect(startBatchRun(env.client, worker.taskQueue, input)).rejects.toThrow(/source.table: must be a table name/);
    } finally {
      await worker.stop();
    }
  });

  it('retries chunks whose database connections drop mid-run', async () => {
    const { view } = await ridesTable(env.pool, { '2024-01': 40_000 });
    const taskQueue = uniqueName('tq');
    const worker = await spawnWorker(env, taskQueue);
    try {
      const input = job(view, { chunkSize: 2_000, parallelism: 2 });
      const handle = await startBatchRun(env.client, taskQueue, input);
      let dropped = 0;
      for (let i = 0; i < 3; i++) {
        await waitUntil('chunks in progress', async () => ((await handle.query(progressQuery))?.chunksDone ?? 0) >= 3 * (i + 1));
        // Every connection of the worker process (application_name mldeploy), as a database restart would.
        const { rowCount } = await env.pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'mldeploy' AND pid <> pg_backend_pid()`);
        dropped += rowCount ?? 0;
      }
      expect(dropped).toBeGreaterThan(0);
      expect(await handle.result()).toMatchObject({ rowsScored: 40_000, rowsRejected: 0 });
      expect(await predictionCounts(input.name)).toEqual({ n: 40_000, distinct_ids: 40_000 });
    } finally {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
  });

  it('survives SIGKILL of the only worker process, and two worker processes share a run', async () => {
    const { view } = await ridesTable(env.pool, { '2024-01': 60_000 });
    const taskQueue = uniqueName('tq');
    const input = job(view, { chunkSize: 2_000, parallelism: 2 });
    const first = await spawnWorker(env, taskQueue);
    const handle = await startBatchRun(env.client, taskQueue, input);
    await waitUntil('two chunks done', async () => ((await handle.query(progressQuery).catch(() => undefined))?.chunksDone ?? 0) >= 2);
    first.child.kill('SIGKILL');
    await first.exited;
    const scoredBeforeKill = await env.pool.query('SELECT count(c.scored_at)::int AS n FROM batch_chunks c JOIN batch_runs r USING (run_id) WHERE r.workflow_id = $1', [
      handle.workflowId,
    ]);

    const [second, third] = await Promise.all([spawnWorker(env, taskQueue), spawnWorker(env, taskQueue)]);
    try {
      const summary = await handle.result();
      expect(summary).toMatchObject({ rowsScored: 60_000, chunks: 30 });
      expect(await predictionCounts(input.name)).toEqual({ n: 60_000, distinct_ids: 60_000 });
      const scorers = await env.pool.query('SELECT scored_by, count(*)::int AS n FROM batch_chunks WHERE run_id = $1 GROUP BY scored_by', [summary.runId]);
      const byPid = new Map(scorers.rows.map((r) => [Number(String(r.scored_by).split(':').pop()), r.n]));
      expect(scoredBeforeKill.rows[0].n).toBeGreaterThanOrEqual(2);
      expect(scoredBeforeKill.rows[0].n).toBeLessThan(30);
      expect(byPid.get(second.child.pid!)).toBeGreaterThan(0);
      expect(byPid.get(third.child.pid!)).toBeGreaterThan(0);
    } finally {
      second.child.kill('SIGTERM');
      third.child.kill('SIGTERM');
      await Promise.all([second.exited, third.exited]);
    }
  });
});
