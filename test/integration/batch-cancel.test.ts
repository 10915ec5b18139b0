// Cancelling a batch run end to end: real activities, PostgreSQL and Temporal dev server,
// cancelled through `mldeploy runs cancel` (a real CLI process) and through the client's
// handle.cancel() as the Web UI does. The run ends 'cancelled' in batch_runs, the chunks that
// finished keep their predictions, and the chunk in flight rolls back whole.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelledFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { startBatchRun } from '../../src/batch/client.ts';
import { createBatchActivities } from '../../activities/batch.ts';
import { ModelCache } from '../../src/registry/runtime.ts';
import { progressQuery } from '../../workflows/batch-scoring.ts';
import { openTestEnv, registerExample, uniqueName, type TestEnv } from '../helpers.ts';
import { TEST_WORKER_OPTIONS, WORKFLOWS_PATH } from '../workflows/support.ts';
import { ridesTable, waitUntil } from './batch-support.ts';

const run = promisify(execFile);

let env: TestEnv;
let model: string;
let worker: Worker;
let running: Promise<void>;
let models: ModelCache;
const taskQueue = uniqueName('tq');
beforeAll(async () => {
  env = await openTestEnv();
  model = (await registerExample(env, 'trip-duration')).name;
  // Reading the source is slow on purpose (by default 0.1 s per 1,000 rows), so a run is
  // still going when it is cancelled: about 2 s per 20,000-row chunk, 0.8 s per sub-batch.
  await env.pool.query('CREATE TABLE IF NOT EXISTS mldeploy_test_pace (seconds double precision NOT NULL)');
  await setPace(0.1);
  await env.pool.query(`CREATE OR REPLACE FUNCTION mldeploy_test_slow(id bigint) RETURNS double precision LANGUAGE plpgsql VOLATILE AS $$
    BEGIN IF id % 1000 = 0 THEN PERFORM pg_sleep((SELECT seconds FROM mldeploy_test_pace LIMIT 1)); END IF; RETURN 0; END $$`);
  models = new ModelCache(env.store, 1);
  worker = await Worker.create({
    connection: env.connection,
    taskQueue,
    workflowsPath: WORKFLOWS_PATH,
    activities: createBatchActivities({ pool: env.pool, store: env.store, models }),
    // Heartbeats (and so cancellations) go out at once, not every 16 s (80% of the heartbeat timeout).
    ...TEST_WORKER_OPTIONS,
  });
  running = worker.run();
});
afterAll(async () => {
  worker?.shutdown();
  await running;
  await models?.release();
  await env?.close();
});

/** Seconds the source takes per 1,000 rows read; takes effect at once, also mid-chunk. */
async function setPace(seconds: number) {
  await env.pool.query('DELETE FROM mldeploy_test_pace');
  await env.pool.query('INSERT INTO mldeploy_test_pace VALUES ($1)', [seconds]);
}

async function slowRun() {
  const { view } = await ridesTable(env.pool, { '2024-01': 60_000 });
  const slow = `${view}_slow`;
  await env.pool.query(`CREATE VIEW ${slow} AS SELECT v.*, v.duration + mldeploy_test_slow(v.ride_id) AS slow_duration FROM ${view} v`);
  const job = {
    name: uniqueName('job'),
    model,
    source: { table: slow, idColumn: 'ride_id', timestampColumn: 'lpep_pickup_datetime', actualColumn: 'slow_duration' },
    window: { from: '2024-01-01', to: '2024-02-01' },
    chunkSize: 20_000,
    parallelism: 1,
  };
  const handle = await startBatchRun(env.client, taskQueue, job);
  await waitUntil('a finished chunk', async () => ((await handle.query(progressQuery))?.chunksDone ?? 0) >= 1, 60_000);
  return { job, handle };
}

/** The run's record, and each planned chunk's predictions: every chunk is whole or absent. */
async function expectCancelledWithWholeChunks(workflowId: string, jobName: string) {
  const runs = await env.pool.query('SELECT run_id, status, chunks, rows_scored, finished_at FROM batch_runs WHERE workflow_id = $1', [workflowId]);
  expect(runs.rows).toHaveLength(1);
  const r = runs.rows[0];
  expect(r.status).toBe('cancelled');
  expect(r.finished_at).not.toBeNull();
  const chunks = await env.pool.query(
    `SELECT c.chunk_no, c.planned_rows, c.scored_at IS NOT NULL AS done,
            (SELECT count(*)::int FROM predictions p WHERE p.job = $2 AND p.entity_id BETWEEN c.key_lo AND c.key_hi) AS predictions
     FROM batch_chunks c WHERE c.run_id = $1 ORDER BY c.chunk_no`,
    [r.run_id, jobName],
  );
  expect(chunks.rows).toHaveLength(3);
  const done = chunks.rows.filter((c) => c.done);
  expect(done.length).toBeGreaterThanOrEqual(1);
  expect(done.length).toBeLessThan(3); // cancelled before the end
  for (const c of chunks.rows) expect(c.predictions).toBe(c.done ? c.planned_rows : 0);
  expect(Number(r.rows_scored)).toBe(done.reduce((n, c) => n + c.planned_rows, 0));
  return { chunksDone: done.length, rowsScored: Number(r.rows_scored) };
}

describe('cancelling a batch run', () => {
  it('`mldeploy runs cancel --job --from --to` ends the run as cancelled, finished chunks kept', async () => {
    const { job, handle } = await slowRun();
    // A CLI process takes seconds to start on a busy machine: hold the run back meanwhile
    // (8 s per sub-batch), and let it go on at the usual pace once the cancellation is asked.
    await setPace(1);
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-cli-'));
    const cli = run(process.execPath, ['bin/mldeploy.js', 'runs', 'cancel', '--job', job.name, '--from', '2024-01-01', '--to', '2024-02-01'], {
      env: { ...process.env, TEMPORAL_ADDRESS: env.temporalAddress, DATABASE_URL: env.databaseUrl, MLDEPLOY_DATA_DIR: dataDir, MLDEPLOY_LOG_LEVEL: 'warn' },
      timeout: 60_000,
    });
    cli.catch(() => {}); // awaited below
    try {
      await waitUntil('the cancel request', async () => (await handle.fetchHistory()).events!.some((e) => e.workflowExecutionCancelRequestedEventAttributes), 60_000);
    } finally {
      await setPace(0.1);
    }
    const { stdout } = await cli;
    const failure = await handle.result().catch((e) => e);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(failure.cause).toBeInstanceOf(CancelledFailure);
    const kept = await expectCancelledWithWholeChunks(handle.workflowId, job.name);
    expect(JSON.parse(stdout)).toEqual({ workflowId: handle.workflowId, status: 'cancelled', chunks: 3, ...kept });
  });

  it("the client's cancel (the Web UI's) does the same, and the chunk in flight stops before the run is marked", async () => {
    const { job, handle } = await slowRun();
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
    await expectCancelledWithWholeChunks(handle.workflowId, job.name);
    // The chunk in flight stopped (reported as cancelled, not completed) before the run closed.
    const history = await handle.fetchHistory();
    const canceled = history.events!.findIndex((e) => e.activityTaskCanceledEventAttributes);
    const marked = history.events!.findIndex((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'markBatchRunCancelled');
    expect(canceled).toBeGreaterThan(0);
    expect(marked).toBeGreaterThan(canceled);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
  });
});
