// `mldeploy runs cancel`: cancels a batch run, by workflow id or by job and window. The run
// stops its chunks (each rolls back at its next sub-batch), keeps the chunks that finished
// and ends as 'cancelled' in batch_runs. The Web UI's "Cancel" does the same.
import type { Command } from 'commander';
import type { Client } from '@temporalio/client';
import { batchWorkflowId } from '../../workflows/batch-window.ts';
import type { Pool } from '../db/pool.ts';
import { parseDate } from './dates.ts';
import { printJson, UsageError, withStack } from './context.ts';

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

export function runsCommands(program: Command): void {
  const runs = program.command('runs').description('batch runs in progress');
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
