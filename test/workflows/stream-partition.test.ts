// streamPartition with mocked activities on a local dev server: over hundreds of claims it
// continues as new, each run's history stays far below Temporal's warning size, and the
// committed offset carries from run to run, so no event is decided twice or skipped. The real
// activities run end to end in test/integration/stream-batched.test.ts and the fault suite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { partitionActivityQueue, type PartitionInput } from '../../src/streaming/partition-types.ts';
import { partitionStatusQuery, type streamPartition } from '../../workflows/stream-partition.ts';
import { partitionActivities, partitionEvents } from './partition-support.ts';
import { createLocalEnv, startWorker, unique, waitFor } from './support.ts';

/** Temporal warns from 10,240 history events per run (and stops a run at 51,200). */
const HISTORY_WARNING = 10_240;

let env: TestWorkflowEnvironment;
const taskQueue = unique('partition');
const consumerQueue = unique('partition-consumer');
const mock = partitionActivities(consumerQueue);
const stops: Array<() => Promise<void>> = [];

beforeAll(async () => {
  env = await createLocalEnv();
  stops.push((await startWorker(env, taskQueue, mock.main)).stop);
  stops.push((await startWorker(env, consumerQueue, mock.consumer, false)).stop);
  stops.push((await startWorker(env, partitionActivityQueue(taskQueue), mock.main, false)).stop);
});
afterAll(async () => {
  for (const stop of stops) await stop();
  await env?.teardown();
});

function start(ref: PartitionInput) {
  return env.client.workflow.start<typeof streamPartition>('streamPartition', { taskQueue, workflowId: unique(`partition-${ref.eventType}`), args: [ref] });
}

type Run = { runId: string; status: string; events: number; input: PartitionInput; startedAt: number };

/** Every run of the workflow id, oldest first, with its history length and start input. */
async function runsOf(workflowId: string): Promise<Run[]> {
  const runs: Run[] = [];
  for await (const wf of env.client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) {
    const history = await env.client.workflow.getHandle(workflowId, wf.runId).fetchHistory();
    const started = history.events![0].workflowExecutionStartedEventAttributes!;
    const input = JSON.parse(Buffer.from(started.input!.payloads![0].data!).toString()) as PartitionInput;
    runs.push({ runId: wf.runId, status: wf.status.name, events: history.events!.length, input, startedAt: wf.startTime.getTime() });
  }
  return runs.sort((a, b) => a.startedAt - b.startedAt);
}

describe('streamPartition', () => {
  it('continues as new over a long run: bounded history per run, the committed offset carried over, every event decided once', async () => {
    const ref = { eventType: unique('long'), partition: 0, namespace: 'wf' };
    // 1,200 events now in batches of at most 4, 800 more (some invalid) while it runs: 500
    // batches, more claims than one run makes (CLAIMS_PER_RUN = 400). Every event has a callback URL.
    const invalidAt = [1_250, 1_500, 1_999];
    const events = partitionEvents(ref.eventType, 2_000, invalidAt, true);
    mock.add(ref, events.slice(0, 1_200), { batchMax: 4, idleMs: 20 });
    const handle = await start(ref);
    await waitFor('half the events decided', () => mock.committed(ref) >= 800, 120_000);
    mock.add(ref, events.slice(1_200));
    await waitFor('every event decided', () => mock.committed(ref) === 2_000, 120_000);
    await waitFor('the status query to see it', async () => (await handle.query(partitionStatusQuery)).committed === 2_000, 20_000);
    const status = await handle.query(partitionStatusQuery);
    // The last batch's callbacks go out after its decision: give them a moment, not a new run.
    await waitFor('every callback delivered', () => mock.callbacks(ref).size === 2_000, 20_000);
    await handle.terminate('test over');

    const runs = await runsOf(handle.workflowId);
    expect(runs.length, 'runs of the partition workflow').toBeGreaterThanOrEqual(2);
    expect(runs.slice(0, -1).every((r) => r.status === 'CONTINUED_AS_NEW')).toBe(true);
    for (const r of runs) expect(r.events, `history events of run ${r.runId}`).toBeLessThan(HISTORY_WARNING);

    // Ranges decided back to back, from offset 1 to 2,000, across every run.
    const decides = mock.decides.filter((d) => runs.some((r) => r.runId === d.runId));
    expect(decides[0].from).toBe(1);
    for (let i = 1; i < decides.length; i++) expect(decides[i].from, `range ${i}`).toBe(decides[i - 1].to + 1);
    expect(decides.at(-1)!.to).toBe(2_000);
    expect(new Set(decides.map((d) => d.runId)).size, 'runs that decided ranges').toBeGreaterThanOrEqual(2);
    expect(decides.flatMap((d) => d.invalid)).toEqual(invalidAt);

    // Each run starts from the offset the one before it committed, and watches from there.
    for (let i = 1; i < runs.length; i++) {
      const lastOfPrevious = decides.filter((d) => d.runId === runs[i - 1].runId).at(-1)?.to ?? runs[i - 1].input.committed;
      expect(runs[i].input.committed, `committed offset handed to run ${i + 1}`).toBe(lastOfPrevious);
      const firstWatch = mock.claims.find((c) => c.runId === runs[i].runId);
      if (firstWatch) expect(firstWatch.after).toBe(runs[i].input.committed);
    }

    // Exactly once: every offset decided once, every valid (offset, consumer) scored once, no invalid one scored.
    const decisions = mock.decisions(ref);
    expect(decisions.size).toBe(2_000);
    expect([...decisions.values()].every((n) => n === 1)).toBe(true);
    const scores = mock.scores(ref);
    expect(scores.size).toBe(2 * (2_000 - invalidAt.length));
    expect([...scores.values()].every((n) => n === 1)).toBe(true);
    for (const o of invalidAt) expect(scores.has(`${o}/risk`) || scores.has(`${o}/eta`)).toBe(false);
    // Every event's callback delivered once: a run waits for its callbacks before it continues as new.
    const callbacks = mock.callbacks(ref);
    expect(callbacks.size, 'events whose callback was delivered').toBe(2_000);
    expect([...callbacks.values()].every((n) => n === 1)).toBe(true);
    // The decided count is carried over continue-as-new as well.
    expect(status).toMatchObject({ committed: 2_000, claimed: 2_000, lag: 0, decided: 2_000 });
  }, 240_000);

  it('an idle partition continues as new too, and resumes from its committed offset', async () => {
    const ref = { eventType: unique('idle'), partition: 3, namespace: 'wf' };
    mock.add(ref, partitionEvents(ref.eventType, 7), { batchMax: 5, idleMs: 1 });
    const handle = await start(ref);
    // Idle watches count towards CLAIMS_PER_RUN: wait for the second run, then send more.
    let runs: Run[] = [];
    await waitFor('a continue-as-new while idle', async () => (runs = await runsOf(handle.workflowId)).length >= 2, 120_000);
    expect(runs[1].input.committed).toBe(7);
    mock.add(ref, partitionEvents(`${ref.eventType}-more`, 3));
    await waitFor('the new events decided', () => mock.committed(ref) === 10, 30_000);
    await handle.terminate('test over');
    runs = await runsOf(handle.workflowId);
    for (const r of runs) expect(r.events).toBeLessThan(HISTORY_WARNING);
    expect([...mock.decisions(ref).entries()]).toEqual(Array.from({ length: 10 }, (_, i) => [i + 1, 1]));
  }, 180_000);
});
