// `mldeploy runs list | show | cancel`: batch runs as batch_runs records them. Cancel stops a
// run, by workflow id or by job and window: its chunks roll back at their next sub-batch, the
// chunks that finished are kept and the run ends as 'cancelled'. The Web UI's "Cancel" does the same.
import { Option, type Command } from 'commander';
import type { Client } from '@temporalio/client';
import { batchWorkflowId } from '../../workflows/batch-window.ts';
import type { Pool } from '../db/pool.ts';
import { parseDate } from './dates.ts';
import { positiveInt, printJson, UsageError, withStack } from './context.ts';
import { printList, withOutputOptions, type OutputFlags } from './output.ts';

export type RunTarget = { workflowId: string } | { job: string; from: string; to: string };

export function runWorkflowId(target: RunTarget): string {
  if ('workflowId' in target) return target.workflowId;
  const from = parseDate('--from', target.from);
  const to = parseDate('--to', target.to);
  if (from >= to) throw new UsageError('--from must be before --to');
  return batchWorkflowId(target.job, { from: from.toISOString(), to: to.toISOString() });
}

export interface CancelledRun {
  workflowId: string;
  status: string;
  chunks?: number;
  chunksDone?: number;
  rowsScored?: number;
}

/**
 * Asks Temporal to cancel the run, then (unless wait is false) waits until the workflow has
 * closed and reports the run as batch_runs records it.
 */
export async function cancelRun(client: Client, pool: Pool, target: RunTarget, wait = true): Promise<CancelledRun> {
  const workflowId = runWorkflowId(target);
  const handle = client.workflow.getHandle(workflowId);
  const described = await handle.describe().catch((err) => {
    throw new UsageError(`no batch run ${workflowId}: ${err instanceof Error ? err.message : String(err)}`);
  });
  if (described.status.name !== 'RUNNING') throw new UsageError(`run ${workflowId} is not running (${described.status.name.toLowerCase()})`);
  await handle.cancel();
  if (!wait) return { workflowId, status: 'cancel requested' };
  await handle.result().catch(() => undefined); // a cancelled run ends with a CancelledFailure
  const { rows } = await pool.query(
    `SELECT status, chunks, rows_scored, (SELECT count(scored_at)::int FROM batch_chunks c WHERE c.run_id = r.run_id) AS chunks_done
     FROM batch_runs r WHERE workflow_id = $1 ORDER BY started_at DESC LIMIT 1`,
    [workflowId],
  );
  const run = rows[0];
  return run
    ? { workflowId, status: run.status, chunks: run.chunks, chunksDone: run.chunks_done, rowsScored: Number(run.rows_scored) }
    : { workflowId, status: (await handle.describe()).status.name.toLowerCase() };
}

const RUN_STATUSES = ['running', 'succeeded', 'failed', 'cancelled'];

/** The newest runs first, optionally of one job or status. */
async function listRuns(pool: Pool, flags: { job?: string; status?: string; limit: number }) {
  const { rows } = await pool.query(
    `SELECT run_id, workflow_id, job, model_name || '@' || model_version AS model, window_start, window_end, status, rows_scored, rows_rejected, started_at, duration_ms
     FROM batch_runs WHERE ($1::text IS NULL OR job = $1) AND ($2::text IS NULL OR status = $2) ORDER BY started_at DESC LIMIT $3`,
    [flags.job ?? null, flags.status ?? null, flags.limit],
  );
  return rows.map((r) => ({
    runId: r.run_id as string,
    job: r.job as string,
    model: r.model as string,
    window: `${(r.window_start as Date).toISOString()}..${(r.window_end as Date).toISOString()}`,
    status: r.status as string,
    rowsScored: Number(r.rows_scored),
    rowsRejected: Number(r.rows_rejected),
    started: r.started_at as Date,
    durationMs: r.duration_ms === null ? null : Number(r.duration_ms),
  }));
}

/** One run by run id, or the latest run of a workflow id, with its chunk progress. */
async function showRun(pool: Pool, id: string) {
  const { rows } = await pool.query(
    `SELECT r.*, (SELECT count(scored_at)::int FROM batch_chunks c WHERE c.run_id = r.run_id) AS chunks_done
     FROM batch_runs r WHERE run_id = $1 OR workflow_id = $1 ORDER BY (run_id = $1) DESC, started_at DESC LIMIT 1`,
    [id],
  );
  const r = rows[0];
  if (!r) throw new UsageError(`no batch run ${JSON.stringify(id)} (give a run id or a workflow id, as \`mldeploy runs list\` shows them)`);
  return {
    runId: r.run_id,
    workflowId: r.workflow_id,
    job: r.job,
    model: { name: r.model_name, version: r.model_version },
    source: r.source,
    target: r.target,
    window: { from: r.window_start, to: r.window_end },
    status: r.status,
    chunks: r.chunks,
    chunksDone: r.chunks_done,
    rowsRead: Number(r.rows_read),
    rowsScored: Number(r.rows_scored),
    rowsRejected: Number(r.rows_rejected),
    stats: r.stats,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    durationMs: r.duration_ms === null ? null : Number(r.duration_ms),
  };
}

export function runsCommands(program: Command): void {
  const runs = program.command('runs').description('batch runs: list, show, cancel');
  withOutputOptions(runs.command('list').description('batch runs, newest first'))
    .option('--job <name>', 'runs of this job only')
    .addOption(new Option('--status <status>', 'runs in this state only').choices(RUN_STATUSES))
    .option('--limit <n>', 'how many runs', positiveInt('--limit'), 20)
    .action(async (flags: OutputFlags & { job?: string; status?: string; limit: number }) => {
      await withStack({ temporal: false }, async (stack) => printList(await listRuns(stack.pool, flags), flags, 'no batch runs'));
    });
  runs
    .command('show <runId>')
    .description('one run (by run id, or the latest run of a workflow id): its window, status, chunks, row counts and statistics')
    .action(async (id: string) => {
      await withStack({ temporal: false }, async (stack) => printJson(await showRun(stack.pool, id)));
    });
  runs
    .command('cancel [workflow-id]')
    .description('cancel a batch run: by workflow id, or by --job with --from and --to; finished chunks are kept')
    .option('--job <name>', 'job name (with --from and --to)')
    .option('--from <date>', 'window start of the run')
    .option('--to <date>', 'window end of the run')
    .option('--no-wait', 'return once cancellation is requested')
    .action(async (workflowId: string | undefined, flags: { job?: string; from?: string; to?: string; wait: boolean }) => {
      let target: RunTarget;
      if (workflowId && !flags.job) target = { workflowId };
      else if (!workflowId && flags.job && flags.from && flags.to) target = { job: flags.job, from: flags.from, to: flags.to };
      else throw new UsageError('give a workflow id, or --job with --from and --to');
      await withStack({ temporal: true }, async (stack) => printJson(await cancelRun(await stack.client(), stack.pool, target, flags.wait)));
    });
}
