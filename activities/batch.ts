// Batch scoring activities: prepare (resolve the model, plan chunks), score one chunk,
// finalize. They do all the I/O; the workflow only passes ids, key-range numbers and counts.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { parseJob, JobError, type BatchJob, type BatchJobInput } from '../src/batch/job.ts';
import { finalizeRun, planRun, scoreChunk, type ChunkCounts, type RunContext, type RunSummary } from '../src/batch/scorer.ts';
import { ModelNotFoundError } from '../src/registry/store.ts';
import { RefError } from '../src/registry/refs.ts';
import { webhookRefusal } from '../src/monitoring/alerts.ts';
import type { ActivityDeps } from './deps.ts';

export interface PreparedRun {
  job: BatchJob;
  model: { name: string; version: number };
  chunks: number;
  rows: number;
}

/** Bad input is permanent: fail at once instead of retrying forever. */
async function permanentOnBadInput<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof JobError || err instanceof ModelNotFoundError || err instanceof RefError) {
      throw ApplicationFailure.nonRetryable(err.message, err.name);
    }
    throw err;
  }
}

export function createBatchActivities({ pool, models, monitoring }: ActivityDeps) {
  return {
    async prepareBatchRun(input: { job: BatchJobInput; window: { from: string; to: string }; runId: string; workflowId: string }): Promise<PreparedRun> {
      return permanentOnBadInput(async () => {
        const job = parseJob(input.job);
        const refusal = job.drift.webhook ? webhookRefusal(job.drift.webhook, monitoring?.alertHosts) : undefined;
        if (refusal) throw new JobError(`drift.webhook: ${refusal}`);
        const version = await models.resolver.resolve(job.model);
        const model = await models.get(version);
        const ctx = { runId: input.runId, workflowId: input.workflowId, job, window: input.window, model: { name: version.name, version: version.version } };
        const plan = await planRun(pool, ctx, model);
        return { job, model: ctx.model, ...plan };
      });
    },

    async scoreBatchChunk(input: { ctx: RunContext; chunkNo: number }): Promise<ChunkCounts> {
      return permanentOnBadInput(async () => {
        const model = await models.get(input.ctx.model);
        const activity = Context.current();
        // A cancelled run's chunk hears of it on a heartbeat's answer and stops at the next
        // sub-batch, rolling its transaction back (it throws CancelledFailure: reported as cancelled).
        return scoreChunk(pool, input.ctx, input.chunkNo, model, () => activity.heartbeat(), activity.cancellationSignal);
      });
    },

    async finalizeBatchRun(input: { ctx: RunContext }): Promise<RunSummary> {
      const summary = await finalizeRun(pool, input.ctx);
      if (summary.status === 'failed') {
        throw ApplicationFailure.nonRetryable(
          `every row in the window was rejected (${summary.rowsRejected} rows); first reasons: ${summary.firstRejections.join('; ')}`,
          'AllRowsRejected',
        );
      }
      return summary;
    },

    /** A cancelled run keeps the chunks that finished; its totals are theirs. Runs already closed stay as they are. */
    async markBatchRunCancelled(input: { runId: string }): Promise<void> {
      await pool.query(
        `UPDATE batch_runs r SET status = 'cancelled', rows_read = c.scored + c.rejected, rows_scored = c.scored, rows_rejected = c.rejected,
                stats = jsonb_build_object('cancelled', true, 'chunksDone', c.done, 'chunks', r.chunks),
                finished_at = now(), duration_ms = (extract(epoch FROM now() - r.started_at) * 1000)::bigint
         FROM (SELECT count(scored_at)::int AS done, coalesce(sum(rows_scored), 0) AS scored, coalesce(sum(rows_rejected), 0) AS rejected
               FROM batch_chunks WHERE run_id = $1 AND scored_at IS NOT NULL) c
         WHERE r.run_id = $1 AND r.status = 'running'`,
        [input.runId],
      );
    },

    async markBatchRunFailed(input: { runId: string; reason: string }): Promise<void> {
      await pool.query(`UPDATE batch_runs SET status = 'failed', stats = jsonb_build_object('error', $2::text), finished_at = now() WHERE run_id = $1`, [
        input.runId,
        input.reason,
      ]);
    },
  };
}
