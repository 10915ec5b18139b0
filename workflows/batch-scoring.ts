// Batch scoring as a durable workflow: resolve the model once, plan key-range chunks, score
// them with bounded parallelism on any worker of the task queue, then write the run
// summary. Rows never pass through Temporal; history stays bounded with continue-as-new.
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  ContinueAsNew,
  continueAsNew,
  defineQuery,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { BatchJobInput } from '../src/batch/job.ts';
import type { RunContext, RunSummary } from '../src/batch/scorer.ts';
import { previousPeriod, type Window } from './batch-window.ts';
import { ALERT_ACTIVITY_OPTIONS, alertFailure } from './alert-options.ts';
import { DRIFT, JOB, MODEL_NAME, MODEL_VERSION, SCHEDULED_START_TIME } from './search-attributes.ts';

export interface BatchProgress {
  runId: string;
  window?: Window;
  model?: { name: string; version: number };
  chunks: number;
  chunksDone: number;
  rowsPlanned: number;
  rowsRead: number;
  rowsScored: number;
  rowsRejected: number;
}

/** Carried across continue-as-new. */
export interface BatchCheckpoint {
  ctx: RunContext;
  progress: BatchProgress;
}

export const progressQuery = defineQuery<BatchProgress>('progress');

const { prepareBatchRun, finalizeBatchRun, markBatchRunFailed, markBatchRunCancelled } = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

const CHUNK_OPTIONS = {
  startToCloseTimeout: '30 minutes',
  // Chunks heartbeat after every sub-batch, so a dead worker's chunk is retried elsewhere
  // quickly, and a cancellation reaches the chunk (it comes back on a heartbeat's answer).
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
} as const;

const { sendDriftAlert } = proxyActivities<Activities>(ALERT_ACTIVITY_OPTIONS);

/** Before the cancellation patch: a cancelled chunk counts as stopped as soon as cancellation is asked. */
const { scoreBatchChunk: scoreBatchChunkTryCancel } = proxyActivities<Activities>(CHUNK_OPTIONS);

/** With the patch: a cancelled chunk counts as stopped once it has rolled back (or committed). */
const { scoreBatchChunk: scoreBatchChunkWaitCancel } = proxyActivities<Activities>({
  ...CHUNK_OPTIONS,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

/**
 * Patch ids (see docs/versioning.md). Runs started before a patch replay without it; remove
 * a patch's old branch only once no run that started without it can still be replayed.
 */
export const PATCHES = {
  /** Chunk activities are awaited through their cancellation. Decided once, at the start of each run. */
  chunksWaitCancellation: 'batch-chunks-wait-cancellation',
  /** A cancelled run marks batch_runs 'cancelled' in a non-cancellable scope. */
  cancelCleanup: 'batch-cancel-cleanup',
  /** A run with a drift verdict sets MldeployDrift once finalized. */
  driftSearchAttribute: 'batch-drift-search-attribute',
  /** A drifted run sends its drift alert (sendDriftAlert) once finalized. */
  driftAlert: 'batch-drift-alert',
} as const;

/** The window to score: the job's own, or the period before the scheduled time. */
function windowOf(job: BatchJobInput): Window {
  if (job.window) return { from: new Date(job.window.from).toISOString(), to: new Date(job.window.to).toISOString() };
  if (!job.period) throw ApplicationFailure.nonRetryable('the job has neither a window nor a period', 'JobError');
  const info = workflowInfo();
  const scheduled = info.typedSearchAttributes.get(SCHEDULED_START_TIME);
  return previousPeriod(job.period, scheduled ? new Date(scheduled) : info.startTime);
}

export async function batchScoring(job: BatchJobInput, checkpoint?: BatchCheckpoint): Promise<RunSummary> {
  const info = workflowInfo();
  const runId = info.firstExecutionRunId;
  let progress: BatchProgress = checkpoint?.progress ?? { runId, chunks: 0, chunksDone: 0, rowsPlanned: 0, rowsRead: 0, rowsScored: 0, rowsRejected: 0 };
  setHandler(progressQuery, () => progress);
  const scoreBatchChunk = patched(PATCHES.chunksWaitCancellation) ? scoreBatchChunkWaitCancel : scoreBatchChunkTryCancel;
  const inFlight = new Set<Promise<void>>();

  try {
    let ctx = checkpoint?.ctx;
    if (!ctx) {
      const window = windowOf(job);
      progress = { ...progress, window };
      upsertSearchAttributes([{ key: JOB, value: String(job.name) }]);
      const prepared = await prepareBatchRun({ job, window, runId, workflowId: info.workflowId });
      ctx = { runId, job: prepared.job, window, model: prepared.model };
      progress = { ...progress, model: prepared.model, chunks: prepared.chunks, rowsPlanned: prepared.rows };
      upsertSearchAttributes([
        { key: MODEL_NAME, value: prepared.model.name },
        { key: MODEL_VERSION, value: prepared.model.version },
      ]);
    }

    const runContext = ctx;
    const firstChunk = progress.chunksDone;
    const lastChunk = Math.min(progress.chunks, firstChunk + runContext.job.chunksPerRun);
    for (let chunkNo = firstChunk; chunkNo < lastChunk; chunkNo++) {
      if (inFlight.size >= runContext.job.parallelism) await Promise.race(inFlight);
      if (chunkNo > firstChunk && workflowInfo().continueAsNewSuggested) break;
      const scored: Promise<void> = scoreBatchChunk({ ctx: runContext, chunkNo }).then((counts) => {
        progress = {
          ...progress,
          chunksDone: progress.chunksDone + 1,
          rowsRead: progress.rowsRead + counts.read,
          rowsScored: progress.rowsScored + counts.scored,
          rowsRejected: progress.rowsRejected + counts.rejected,
        };
        inFlight.delete(scored);
      });
      inFlight.add(scored);
    }
    await Promise.all(inFlight);

    if (progress.chunksDone < progress.chunks) {
      return await continueAsNew<typeof batchScoring>(job, { ctx: runContext, progress });
    }
    const summary = await finalizeBatchRun({ ctx: runContext });
    if (summary.drift && patched(PATCHES.driftSearchAttribute)) upsertSearchAttributes([{ key: DRIFT, value: summary.drift.drifted ? 'drifted' : 'stable' }]);
    if (summary.drift?.drifted && patched(PATCHES.driftAlert)) {
      // The run is finalized: an alert that cannot be sent is logged, not a failed run.
      await sendDriftAlert({ runId }).catch((err: unknown) => log.warn('drift alert not sent', { runId, reason: alertFailure(err) }));
    }
    return summary;
  } catch (err) {
    if (isCancellation(err) && patched(PATCHES.cancelCleanup)) {
      // The run's scope is cancelled, so cleanup runs in a scope that is not: wait until every
      // chunk in flight has stopped (rolled back) or committed, then record the run as
      // cancelled with the chunks that finished.
      await CancellationScope.nonCancellable(async () => {
        await Promise.allSettled(inFlight);
        await markBatchRunCancelled({ runId });
      });
    } else if (!(err instanceof ContinueAsNew)) {
      await markBatchRunFailed({ runId, reason: err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err) });
    }
    throw err;
  }
}
