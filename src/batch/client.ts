// Starting batch runs and managing their Temporal Schedules, for the CLI and for backends.
import { ScheduleOverlapPolicy, type Client, type WorkflowHandle } from '@temporalio/client';
import type { batchScoring } from '../../workflows/batch-scoring.ts';
import { batchWorkflowId } from '../../workflows/batch-window.ts';
import { JOB } from '../../workflows/search-attributes.ts';
import { parseJob, type BatchJobInput } from './job.ts';

export const BATCH_WORKFLOW = 'batchScoring';

/**
 * Starts scoring one window, or attaches to the run of that job and window already in
 * progress. The workflow id is the job name plus the window.
 */
export async function startBatchRun(client: Client, taskQueue: string, input: BatchJobInput): Promise<WorkflowHandle<typeof batchScoring>> {
  const job = parseJob(input);
  if (!job.window) throw new Error('a run started by hand needs a window; schedules use period');
  const window = { from: new Date(job.window.from).toISOString(), to: new Date(job.window.to).toISOString() };
  return client.workflow.start<typeof batchScoring>(BATCH_WORKFLOW, {
    taskQueue,
    workflowId: batchWorkflowId(job.name, window),
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
    typedSearchAttributes: [{ key: JOB, value: job.name }],
  });
}

export interface ScheduleRequest {
  scheduleId: string;
  cron: string;
  job: BatchJobInput;
  taskQueue: string;
  catchupWindow?: string;
  overlap?: keyof typeof ScheduleOverlapPolicy;
}

export async function createBatchSchedule(client: Client, req: ScheduleRequest) {
  const job = parseJob(req.job);
  if (!job.period) throw new Error('a scheduled job needs --period (hour, day or month): each run scores the period before its scheduled time');
  return client.schedule.create({
    scheduleId: req.scheduleId,
    spec: { cronExpressions: [req.cron] },
    action: {
      type: 'startWorkflow',
      workflowType: BATCH_WORKFLOW,
      workflowId: `batch-${job.name}`,
      taskQueue: req.taskQueue,
      args: [{ ...req.job, window: undefined }],
      typedSearchAttributes: [{ key: JOB, value: job.name }],
    },
    policies: {
      overlap: ScheduleOverlapPolicy[req.overlap ?? 'SKIP'],
      catchupWindow: req.catchupWindow ?? '1 day',
    },
  });
}

/**
 * Temporal's own backfill: one run per scheduled time in [from, to), each scoring its own
 * period. Buffered, so the runs go one after another.
 */
export async function backfillSchedule(client: Client, scheduleId: string, from: Date, to: Date): Promise<void> {
  await client.schedule.getHandle(scheduleId).backfill([{ start: from, end: to, overlap: ScheduleOverlapPolicy.BUFFER_ALL }]);
}
