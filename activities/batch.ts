// Batch scoring activities: prepare (resolve the model, plan chunks), score one chunk,
// finalize. They do all the I/O; the workflow only passes ids, key-range numbers and counts.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { parseJob, JobError, type BatchJob, type BatchJobInput } from '../src/batch/job.ts';
import { finalizeRun, planRun, scoreChunk, type ChunkCounts, type RunContext, type RunSummary } from '../src/batch/scorer.ts';
import { ModelNotFoundError } from '../src/registry/store.ts';
import { RefError } from '../src/registry/refs.ts';
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

export function createBatchActivities({ pool, store, models }: ActivityDeps) {
  return {
    async prepareBatchRun(input: { job: BatchJobInput; window: { from: string; to: string }; runId: string; workflowId: string }): Promise<PreparedRun> {
      return permanentOnBadInput(async () => {
        const job = parseJob(input.job);
        const version = await store.resolve(job.model);
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
        return scoreChunk(pool, input.ctx, input.chunkNo, model, () => activity.heartbeat());
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

    async markBatchRunFailed(input: { runId: string; reason: string }): Promise<void> {
      await pool.query(`UPDATE batch_runs SET status = 'failed', stats = jsonb_build_object('error', $2::text), finished_at = now() WHERE run_id = $1`, [input.runId, input.reason]);
    },
  };
}
