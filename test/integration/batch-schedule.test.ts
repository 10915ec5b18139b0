// Schedules, backfills, continue-as-new and replay of the batch workflow.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { backfillSchedule, createBatchSchedule, startBatchRun } from '../../src/batch/client.ts';
import { WORKFLOWS_PATH } from '../../src/worker.ts';
import { openTestEnv, registerExample, startTestWorker, uniqueName, type TestEnv } from '../helpers.ts';
import { ridesTable, waitUntil } from './batch-support.ts';
import { RIDE_COLUMNS } from '../../src/demo.ts';

const HISTORIES = path.resolve('test/fixtures/histories');
const History = temporal.api.history.v1.History;

let env: TestEnv;
let model: string;
let worker: Awaited<ReturnType<typeof startTestWorker>>;
beforeAll(async () => {
  env = await openTestEnv();
  model = (await registerExample(env, 'trip-duration')).name;
  worker = await startTestWorker(env);
});
afterAll(async () => {
  await worker.stop();
  await env.close();
});

describe('batch schedules', () => {
  it('a backfill over 3 months gives 3 runs, each month scored once', async () => {
    const months = { '2023-01': 1_000, '2023-02': 1_200, '2023-03': 1_500, '2023-04': 800 };
    const { view } = await ridesTable(env.pool, months);
    const scheduleId = uniqueName('monthly');
    const jobName = uniqueName('job');
    await createBatchSchedule(env.client, {
      scheduleId,
      cron: '0 3 2 * *',
      taskQueue: worker.taskQueue,
      job: { name: jobName, model: `${model}@production`, source: { table: view, ...RIDE_COLUMNS, actualColumn: 'duration' }, period: 'month' },
    });
    try {
      // Scheduled times 2 Feb, 2 Mar and 2 Apr score January, February and March.
      await backfillSchedule(env.client, scheduleId, new Date('2023-02-01T00:00:00Z'), new Date('2023-05-01T00:00:00Z'));
      await waitUntil(
        'three finished runs',
        async () => {
          const { rows } = await env.pool.query(`SELECT count(*)::int AS n FROM batch_runs WHERE job = $1 AND status = 'succeeded'`, [jobName]);
          return rows[0].n === 3;
        },
        90_000,
      );
      const runs = await env.pool.query('SELECT window_start, window_end, rows_scored FROM batch_runs WHERE job = $1 ORDER BY window_start', [jobName]);
      expect(runs.rows.map((r) => [r.window_start.toISOString().slice(0, 7), Number(r.rows_scored)])).toEqual([
        ['2023-01', 1_000],
        ['2023-02', 1_200],
        ['2023-03', 1_500],
      ]);
      const perMonth = await env.pool.query(
        `SELECT to_char(event_time, 'YYYY-MM') AS month, count(*)::int AS n, count(DISTINCT entity_id)::int AS ids
         FROM predictions WHERE job = $1 GROUP BY 1 ORDER BY 1`,
        [jobName],
      );
      expect(perMonth.rows).toEqual([
        { month: '2023-01', n: 1_000, ids: 1_000 },
        { month: '2023-02', n: 1_200, ids: 1_200 },
        { month: '2023-03', n: 1_500, ids: 1_500 },
      ]);
      const ids = [];
      for await (const wf of env.client.workflow.list({ query: `MldeployJob = "${jobName}"` })) ids.push(wf.workflowId);
      expect(ids).toHaveLength(3);
      expect(ids.every((id) => id.startsWith(`batch-${jobName}-2023-0`))).toBe(true);
    } finally {
      await env.client.schedule.getHandle(scheduleId).delete();
    }
  });

  it('continues as new to keep history bounded, and still scores every row once', async () => {
    const { view } = await ridesTable(env.pool, { '2024-01': 5_000 });
    const jobName = uniqueName('job');
    const handle = await startBatchRun(env.client, worker.taskQueue, {
      name: jobName,
      model,
      source: { table: view, ...RIDE_COLUMNS },
      window: { from: '2024-01-01', to: '2024-02-01' },
      chunkSize: 500,
      parallelism: 3,
      chunksPerRun: 4,
    });
    const summary = await handle.result();
    expect(summary).toMatchObject({ rowsScored: 5_000, chunks: 10 });
    const { rows } = await env.pool.query('SELECT count(*)::int AS n, count(DISTINCT entity_id)::int AS ids FROM predictions WHERE job = $1', [jobName]);
    expect(rows[0]).toEqual({ n: 5_000, ids: 5_000 });
    // 10 chunks at 4 per run: three runs in the chain.
    let runs = 0;
    for await (const _ of env.client.workflow.list({ query: `WorkflowId = "${handle.workflowId}"` })) runs++;
    expect(runs).toBe(3);
  });
});

describe('replay', () => {
  it('recorded and fresh histories of the batch workflow replay without non-determinism', async () => {
    const fresh = [];
    for await (const wf of env.client.workflow.list({ query: `WorkflowType = "batchScoring" AND ExecutionStatus != "Running"` })) {
      fresh.push({ workflowId: wf.workflowId, history: await env.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory() });
    }
    expect(fresh.length).toBeGreaterThanOrEqual(4);
    if (process.env.MLDEPLOY_RECORD_HISTORIES) {
      // Refresh the committed fixtures from this run: `MLDEPLOY_RECORD_HISTORIES=1 npx vitest run batch-schedule`.
      fresh.slice(0, 3).forEach((f, i) => fs.writeFileSync(path.join(HISTORIES, `batch-scoring-${i + 1}.pb`), History.encode(f.history).finish()));
    }
    const recorded = fs
      .readdirSync(HISTORIES)
      .filter((f) => f.startsWith('batch-') && f.endsWith('.pb'))
      .map((f) => ({ workflowId: f, history: History.decode(fs.readFileSync(path.join(HISTORIES, f))) }));
    expect(recorded.length).toBeGreaterThanOrEqual(1);
    const results = [];
    for await (const result of Worker.runReplayHistories({ workflowsPath: WORKFLOWS_PATH, replayName: 'batch' }, [...fresh, ...recorded])) results.push(result);
    expect(results.filter((r) => r.error).map((r) => `${r.workflowId}: ${r.error}`)).toEqual([]);
    expect(results).toHaveLength(fresh.length + recorded.length);
  });
});
