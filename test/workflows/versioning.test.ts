// Workflow code changes ship with patched() (docs/versioning.md). This starts batch runs on
// the old workflow code (test/workflows/v1: batchScoring before the cancellation patches),
// stops that worker mid-run, and lets a worker with today's workflows/ finish them: one
// completes, one is cancelled and takes the new cleanup. Their histories, which span both
// versions, then replay on the new code, and a history recorded on the new code is shown
// to fail on the old code, so the replay check has teeth.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import type { batchScoring } from '../../workflows/batch-scoring.ts';
import { batchActivities, batchJob, createLocalEnv, startWorker, TEST_WORKER_OPTIONS, unique, waitFor, workflowBundle, WORKFLOWS_PATH } from './support.ts';

const V1_PATH = path.resolve('test/workflows/v1/index.ts');
const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

let env: TestWorkflowEnvironment;
const taskQueue = unique('versioning');
const mock = batchActivities({ chunks: 4 });
let activityWorker: Awaited<ReturnType<typeof startWorker>>;

beforeAll(async () => {
  env = await createLocalEnv();
  // Activities poll on their own worker, which outlives both workflow workers.
  activityWorker = await startWorker(env, taskQueue, mock.activities, false);
});
afterAll(async () => {
  await activityWorker?.stop();
  await env?.teardown();
});

/** A workflow-only worker on the task queue, with no cache, so the next worker replays from history. */
async function workflowWorker(bundlePath: 'v1' | 'v2') {
  const workflowBundle_ = bundlePath === 'v1' ? await bundleWorkflowCode({ workflowsPath: V1_PATH, logger: quiet }) : await workflowBundle();
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: workflowBundle_, maxCachedWorkflows: 0, ...TEST_WORKER_OPTIONS });
  const running = worker.run();
  return {
    async stop() {
      worker.shutdown();
      await running;
    },
  };
}

async function chunksInFlight(handle: WorkflowHandle) {
  await waitFor('two chunks in flight', async () => (await handle.describe()).raw.pendingActivities?.length === 2);
}

describe('a workflow started on the old code', () => {
  const handles: WorkflowHandle<typeof batchScoring>[] = [];

  it('completes on the new code, and is cancelled with the new cleanup', async () => {
    mock.gate.open = false;
    const v1 = await workflowWorker('v1');
    const done = await env.client.workflow.start<typeof batchScoring>('batchScoring', {
      taskQueue,
      workflowId: unique('batch-v1-done'),
      args: [batchJob(unique('gated'), { parallelism: 2 })],
    });
    const cancelled = await env.client.workflow.start<typeof batchScoring>('batchScoring', {
      taskQueue,
      workflowId: unique('batch-v1-cancel'),
      args: [batchJob(unique('slow'), { parallelism: 2 })],
    });
    handles.push(done, cancelled);
    await chunksInFlight(done);
    await chunksInFlight(cancelled);
    await v1.stop();

    const v2 = await workflowWorker('v2');
    try {
      await cancelled.cancel();
      const failure = await cancelled.result().catch((e) => e);
      expect(failure).toBeInstanceOf(WorkflowFailedError);
      expect(failure.cause).toBeInstanceOf(CancelledFailure);
      // The cancellation reached the new code: cleanup ran (it never did on the old code).
      expect(mock.runs.get(cancelled.firstExecutionRunId)).toMatchObject({ cancelled: 1, failed: [], finalized: 0 });

      mock.gate.open = true;
      const summary = await done.result();
      expect(summary).toMatchObject({ status: 'succeeded', chunks: 4 });
      expect([...mock.runs.get(done.firstExecutionRunId)!.chunksScored].sort()).toEqual([0, 1, 2, 3]);
    } finally {
      await v2.stop();
    }

    // Neither history has the patch marker at its start: both ran the old chunk proxy throughout.
    for (const h of handles) {
      const history = await h.fetchHistory();
      const markers = history
        .events!.filter((e) => e.markerRecordedEventAttributes)
        .flatMap((e) => Object.values(e.markerRecordedEventAttributes!.details ?? {}).flatMap((p) => p.payloads ?? []))
        .map((p) => Buffer.from(p.data!).toString());
      expect(markers.some((m) => m.includes('batch-chunks-wait-cancellation'))).toBe(false);
      expect(markers.some((m) => m.includes('batch-cancel-cleanup'))).toBe(h === cancelled);
    }
  });

  it('histories spanning both versions replay on the new code', async () => {
    const histories = await Promise.all(handles.map(async (h) => ({ workflowId: h.workflowId, history: await h.fetchHistory() })));
    const results = [];
    for await (const r of Worker.runReplayHistories({ workflowsPath: WORKFLOWS_PATH, replayName: 'v2' }, histories)) results.push(r);
    expect(results.map((r) => r.error && `${r.workflowId}: ${r.error}`)).toEqual([undefined, undefined]);
  });

  it('the replay check has teeth: a history recorded on the new code fails on the old code', async () => {
    const file = path.resolve('test/fixtures/histories/batchScoring--cancelled.pb');
    const history = temporal.api.history.v1.History.decode(fs.readFileSync(file));
    await expect(Worker.runReplayHistory({ workflowsPath: V1_PATH, replayName: 'v1' }, history)).rejects.toThrow(/[Nn]ondetermin/);
  });
});
