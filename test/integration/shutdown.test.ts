// Graceful shutdown: SIGTERM to a `mldeploy worker` in the middle of a batch run stops its
// polling, lets the chunks in flight finish, and exits 0. Another worker completes the run
// with every row exactly once, and no chunk had to be retried.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBatchRun } from '../../src/batch/client.ts';
import { progressQuery } from '../../workflows/batch-scoring.ts';
import { openTestEnv, registerExample, uniqueName, type TestEnv } from '../helpers.ts';
import { ridesTable, spawnWorker, waitUntil, type WorkerProcess } from './batch-support.ts';
import { RIDE_COLUMNS } from '../../src/demo.ts';

let env: TestEnv;
let model: string;
beforeAll(async () => {
  env = await openTestEnv();
  model = (await registerExample(env, 'trip-duration')).name;
});
afterAll(async () => env.close());

/** Resolves with the exit code, or fails if the process outlives the deadline (it would hang the run). */
function exitWithin(worker: WorkerProcess, ms: number): Promise<number | null> {
  return Promise.race([
    worker.exited,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`worker ${worker.child.pid} still running ${ms} ms after SIGTERM`)), ms).unref()),
  ]);
}

describe('SIGTERM to a worker process mid-run', () => {
  it('drains and exits 0; the next worker finishes the run with exactly N predictions and no retried chunk', async () => {
    const rows = 50_000;
    const chunks = 100;
    const { view } = await ridesTable(env.pool, { '2024-01': rows });
    const taskQueue = uniqueName('tq');
    const name = uniqueName('job');
    const first = await spawnWorker(env, taskQueue);
    const handle = await startBatchRun(env.client, taskQueue, {
      name,
      model: `${model}@production`,
      source: { table: view, ...RIDE_COLUMNS },
      window: { from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00Z' },
      chunkSize: rows / chunks,
      parallelism: 2,
    });
    await waitUntil('three chunks done', async () => ((await handle.query(progressQuery).catch(() => undefined))?.chunksDone ?? 0) >= 3);

    first.child.kill('SIGTERM');
    // Well inside the worker's 30 s grace time plus start-up of the shutdown.
    expect(await exitWithin(first, 60_000)).toBe(0);

    const runId = (await env.pool.query('SELECT run_id FROM batch_runs WHERE workflow_id = $1', [handle.workflowId])).rows[0].run_id as string;
    const scoredByFirst = async () =>
      (await env.pool.query('SELECT count(*)::int AS n FROM batch_chunks WHERE run_id = $1 AND scored_by LIKE $2', [runId, `%:${first.child.pid}`])).rows[0].n as number;
    const firstShare = await scoredByFirst();
    expect(firstShare).toBeGreaterThanOrEqual(3);
    expect(firstShare, 'the run was still going when the worker stopped').toBeLessThan(chunks);

    const second = await spawnWorker(env, taskQueue);
    try {
      const summary = await handle.result();
      expect(summary).toMatchObject({ status: 'succeeded', rowsScored: rows, rowsRejected: 0, chunks });
      const { rows: counts } = await env.pool.query('SELECT count(*)::int AS n, count(DISTINCT entity_id)::int AS distinct_ids FROM predictions WHERE job = $1', [name]);
      expect(counts[0]).toEqual({ n: rows, distinct_ids: rows });
      // The stopped worker scored nothing after it exited; the rest is the second worker's.
      expect(await scoredByFirst()).toBe(firstShare);
      const bySecond = await env.pool.query('SELECT count(*)::int AS n FROM batch_chunks WHERE run_id = $1 AND scored_by LIKE $2', [runId, `%:${second.child.pid}`]);
      expect(bySecond.rows[0].n).toBe(chunks - firstShare);

      // Chunks in flight at SIGTERM finished during the drain: no activity failed or timed out.
      const history = await handle.fetchHistory();
      const troubled = (history.events ?? []).filter((e) => e.activityTaskFailedEventAttributes || e.activityTaskTimedOutEventAttributes);
      expect(troubled).toEqual([]);
      const completed = (history.events ?? []).filter((e) => e.activityTaskCompletedEventAttributes).length;
      expect(completed).toBeGreaterThanOrEqual(chunks);
    } finally {
      second.child.kill('SIGTERM');
      expect(await exitWithin(second, 60_000)).toBe(0);
    }
  });
});
