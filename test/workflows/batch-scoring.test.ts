// batchScoring's branches with mocked activities on a local test server: continue-as-new
// after chunksPerRun, a chunk that fails for good, and cancellation (cleanup in a
// non-cancellable scope, chunks stopped through their heartbeats). The real activities'
// cancellation runs end to end in test/integration/batch-cancel.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { progressQuery, type batchScoring } from '../../workflows/batch-scoring.ts';
import { batchJob, batchActivities, createLocalEnv, startWorker, unique, waitFor } from './support.ts';

let env: TestWorkflowEnvironment;
const taskQueue = unique('batch');
const mock = batchActivities({ chunks: 10, slowMs: 30_000 });
let worker: Awaited<ReturnType<typeof startWorker>>;

beforeAll(async () => {
  env = await createLocalEnv();
  worker = await startWorker(env, taskQueue, mock.activities);
});
afterAll(async () => {
  await worker?.stop();
  await env?.teardown();
});

function start(name: string, extra: Parameters<typeof batchJob>[1] = {}) {
  return env.client.workflow.start<typeof batchScoring>('batchScoring', { taskQueue, workflowId: `batch-${name}`, args: [batchJob(name, extra)] });
}

describe('batchScoring', () => {
  it('scores every chunk once, continuing as new after chunksPerRun chunks', async () => {
    const handle = await start(unique('can'), { chunksPerRun: 4, parallelism: 3 });
    const summary = await handle.result();
    const run = mock.runs.get(handle.firstExecutionRunId)!;
    expect([...run.chunksScored].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(run).toMatchObject({ prepared: 1, finalized: 1, failed: [], cancelled: 0 });
    expect(summary).toMatchObject({ status: 'succeeded', chunks: 10 });
    // 10 chunks at 4 per run: a chain of three runs, each starting where the last stopped.
    const runs = [];
    for await (const wf of env.client.workflow.list({ query: `WorkflowId = "${handle.workflowId}"` })) runs.push(wf.status.name);
    expect(runs.sort()).toEqual(['COMPLETED', 'CONTINUED_AS_NEW', 'CONTINUED_AS_NEW']);
  });

  it('a chunk that fails for good fails the run and marks it failed', async () => {
    const handle = await start(unique('fail-chunk-2'), { parallelism: 1 });
    const err = await handle.result().catch((e) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(err.cause).toBeInstanceOf(ActivityFailure);
    expect(err.cause.cause).toBeInstanceOf(ApplicationFailure);
    const run = mock.runs.get(handle.firstExecutionRunId)!;
    expect(run.failed).toEqual(['chunk 2 is broken']);
    expect(run).toMatchObject({ chunksScored: [0, 1], finalized: 0, cancelled: 0 });
  });

  it('a cancelled run stops its chunks, waits for them, and is marked cancelled', async () => {
    const handle = await start(unique('slow'), { parallelism: 2 });
    await waitFor('chunks in flight', async () => (await handle.describe()).raw.pendingActivities?.length === 2);
    await handle.cancel();
    const err = await handle.result().catch((e) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(err.cause).toBeInstanceOf(CancelledFailure);
    const run = mock.runs.get(handle.firstExecutionRunId)!;
    // Both chunks heard of the cancellation through their heartbeats and stopped; the run
    // was marked cancelled only after that (WAIT_CANCELLATION_COMPLETED), and not failed.
    expect(run.chunksCancelled.sort()).toEqual([0, 1]);
    expect(run).toMatchObject({ chunksScored: [], cancelled: 1, failed: [], finalized: 0 });
    expect((await handle.query(progressQuery)).chunksDone).toBe(0);
    const history = await handle.fetchHistory();
    const cancelledChunks = history.events!.filter((e) => e.activityTaskCanceledEventAttributes).map((e) => Number(e.eventId));
    const markScheduled = history.events!.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'markBatchRunCancelled');
    expect(cancelledChunks).toHaveLength(2);
    expect(Number(markScheduled!.eventId)).toBeGreaterThan(Math.max(...cancelledChunks));
    expect((await handle.describe()).status.name).toBe('CANCELLED');
  });
});
