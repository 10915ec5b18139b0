// Workflow unit tests and scripts/record-histories.ts share this: a local Temporal test
// environment on the project's own `temporal` CLI, and mocked activities (plain functions)
// for each workflow. Workflow code is the real code (workflows/); nothing touches PostgreSQL,
// models or streams.
//
// Time skipping: TestWorkflowEnvironment.createTimeSkipping() downloads a test-server binary
// that cannot be fetched here, and the dev server that createLocal runs does not skip time.
// So the scenarios use short timeouts (hundreds of milliseconds) instead of skipped ones.
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Activities } from '../../activities/index.ts';
import type { PreparedRun } from '../../activities/batch.ts';
import { parseJob, type BatchJobInput } from '../../src/batch/job.ts';
import type { ChunkCounts, RunContext, RunSummary } from '../../src/batch/scorer.ts';
import { findTemporalCli } from '../../src/stack/temporal-cli.ts';
import { decide, rejection } from '../../src/streaming/policy.ts';
import type { ConsumerOutcome, ConsumerPlan, Decision, DecisionPolicy, PredictionRecord, StreamEvent } from '../../src/streaming/types.ts';
import { ALL_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes.ts';

export const WORKFLOWS_PATH = path.resolve('workflows/index.ts');

export const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

/** A dev server of its own (in memory, headless), started from the CLI the project already uses. */
export async function createLocalEnv(): Promise<TestWorkflowEnvironment> {
  const cli = await findTemporalCli({ cliPath: process.env.TEMPORAL_CLI_PATH || undefined, dataDir: path.resolve(process.env.MLDEPLOY_DATA_DIR ?? '.mldeploy') });
  if (!cli) throw new Error('no temporal CLI found (set TEMPORAL_CLI_PATH)');
  quietRuntime();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: cli },
      searchAttributes: ALL_SEARCH_ATTRIBUTES,
      ui: false,
      log: { format: 'pretty', level: 'warn' },
    },
  });
}

/** Worker state changes and the expected workflow failures stay out of the test output; errors still show. */
function quietRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: 'ERROR', forward: {} } } });
  } catch {
    // already installed in this process: keep that one
  }
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** workflows/ bundled once per process (about a second). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger });
  return bundle;
}

const quietLogger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/**
 * Worker options for tests: heartbeats are sent at most every 100 ms (the default is 80% of
 * the heartbeat timeout: 16 s for batch chunks), so a cancellation reaches an activity at once.
 */
export const TEST_WORKER_OPTIONS = { maxHeartbeatThrottleInterval: '100 milliseconds', defaultHeartbeatThrottleInterval: '100 milliseconds' } as const;

export async function startWorker(env: TestWorkflowEnvironment, taskQueue: string, activities: object, withWorkflows = true) {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    activities,
    ...(withWorkflows ? { workflowBundle: await workflowBundle() } : {}),
    ...TEST_WORKER_OPTIONS,
  });
  const running = worker.run();
  return {
    worker,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}

type BatchActivities = Pick<Activities, 'prepareBatchRun' | 'scoreBatchChunk' | 'finalizeBatchRun' | 'markBatchRunFailed' | 'markBatchRunCancelled' | 'sendDriftAlert'>;

/** What the batch run's mocked activities did, per run id. */
export interface BatchRecord {
  prepared: number;
  chunksScored: number[];
  chunksCancelled: number[];
  finalized: number;
  failed: string[];
  cancelled: number;
  alerts: number;
}

/**
 * batchScoring's activities, mocked. The job's name steers them: a name containing
 * `fail-chunk-N` fails chunk N for good; `drifted` finalizes with a drifted verdict; `slow` makes every chunk heartbeat for `slowMs`,
 * `gated` until `gate.open` is set (both stop when cancelled, as the real chunk does).
 */
export function batchActivities(opts: { rowsPerChunk?: number; chunks: number; slowMs?: number }) {
  const gate = { open: false };
  const runs = new Map<string, BatchRecord>();
  const record = (runId: string) => {
    let r = runs.get(runId);
    if (!r) runs.set(runId, (r = { prepared: 0, chunksScored: [], chunksCancelled: [], finalized: 0, failed: [], cancelled: 0, alerts: 0 }));
    return r;
  };
  const rowsPerChunk = opts.rowsPerChunk ?? 100;
  const activities: BatchActivities = {
    async prepareBatchRun(input): Promise<PreparedRun> {
      record(input.runId).prepared++;
      return { job: parseJob(input.job), model: { name: 'mock-model', version: 3 }, chunks: opts.chunks, rows: opts.chunks * rowsPerChunk };
    },
    async scoreBatchChunk(input: { ctx: RunContext; chunkNo: number }): Promise<ChunkCounts> {
      const r = record(input.ctx.runId);
      const failing = /fail-chunk-(\d+)/.exec(input.ctx.job.name);
      if (failing && Number(failing[1]) === input.chunkNo) throw ApplicationFailure.nonRetryable(`chunk ${input.chunkNo} is broken`, 'MockChunkError');
      const gated = input.ctx.job.name.includes('gated');
      if (input.ctx.job.name.includes('slow') || gated) {
        const ctx = Context.current();
        const until = Date.now() + (opts.slowMs ?? 60_000);
        try {
          while (gated ? !gate.open : Date.now() < until) {
            ctx.heartbeat();
            await ctx.sleep(20);
          }
        } catch (err) {
          r.chunksCancelled.push(input.chunkNo);
          throw err;
        }
      }
      r.chunksScored.push(input.chunkNo);
      return { read: rowsPerChunk, scored: rowsPerChunk - 1, rejected: 1 };
    },
    async finalizeBatchRun(input: { ctx: RunContext }): Promise<RunSummary> {
      const r = record(input.ctx.runId);
      r.finalized++;
      const n = r.chunksScored.length;
      return {
        runId: input.ctx.runId,
        job: input.ctx.job.name,
        model: input.ctx.model,
        window: input.ctx.window,
        status: 'succeeded',
        chunks: n,
        rowsRead: n * rowsPerChunk,
        rowsScored: n * (rowsPerChunk - 1),
        rowsRejected: n,
        durationMs: 1,
        stats: null,
        firstRejections: [],
        ...(input.ctx.job.name.includes('drifted') ? { drift: { drifted: true, driftedShare: 1, features: ['trip_distance'], predictionPsi: 0.4 } } : {}),
      };
    },
    async markBatchRunFailed(input: { runId: string; reason: string }): Promise<void> {
      record(input.runId).failed.push(input.reason);
    },
    async markBatchRunCancelled(input: { runId: string }): Promise<void> {
      record(input.runId).cancelled++;
    },
    async sendDriftAlert(input: { runId: string }) {
      record(input.runId).alerts++;
      return { sent: true as const, url: 'http://hooks.test/drift', status: 200, repeated: false };
    },
  };
  return { activities, runs, record, gate };
}

export function batchJob(name: string, extra: Partial<BatchJobInput> = {}): BatchJobInput {
  return {
    name,
    model: 'mock-model@production',
    source: { table: 'rides', idColumn: 'ride_id', timestampColumn: 'lpep_pickup_datetime' },
    window: { from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00Z' },
    parallelism: 2,
    ...extra,
  };
}

// ---------------------------------------------------------------- eventFanout

export const POLICY: DecisionPolicy = {
  rules: [{ when: { risk: { gt: 0.5 } }, action: 'review', reason: 'risk above 0.5' }],
  default: 'approve',
};

/**
 * How a consumer behaves in a scenario, by name: `ok-<value>` answers that prediction,
 * `slow` sleeps past its timeout, `broken` fails for good.
 */
export function consumer(name: string, behaviour: string, required: boolean, taskQueue: string, timeoutMs = 2_000): ConsumerPlan {
  return { name, taskQueue, model: { name: `${name}-model`, version: 1 }, required, features: { behaviour }, timeoutMs, maxAttempts: 1 };
}

/** The plan of each event, by event id: consumers to run, or a rejection's reasons. */
export type EventPlans = Map<string, { consumers: ConsumerPlan[] } | { rejected: string[] }>;

export interface FanoutRecord {
  outcomes: ConsumerOutcome[];
  delivered: number;
  deliveryFailures: number;
}

/**
 * eventFanout's activities, mocked: planning reads `plans`, consumers act on their
 * `behaviour` feature, and the decision is the real policy's (src/streaming/policy.ts).
 * A callback URL containing `fail` fails for good.
 */
export function fanoutActivities(plans: EventPlans) {
  const records = new Map<string, FanoutRecord>();
  const record = (id: string) => {
    let r = records.get(id);
    if (!r) records.set(id, (r = { outcomes: [], delivered: 0, deliveryFailures: 0 }));
    return r;
  };
  const main = {
    async planEvent(event: StreamEvent) {
      const plan = plans.get(event.id);
      if (!plan || 'rejected' in plan) return { status: 'rejected' as const, decision: rejection(event, plan?.rejected ?? ['no plan'], new Date()) };
      return { status: 'planned' as const, consumers: plan.consumers, policy: POLICY };
    },
    async decideEvent(input: { event: { id: string; type: string; time: string }; policy: DecisionPolicy; outcomes: ConsumerOutcome[] }): Promise<Decision> {
      record(input.event.id).outcomes = input.outcomes;
      return decide(input.event, input.policy, input.outcomes, new Date());
    },
    async deliverDecision(input: { url: string; decision: Decision }): Promise<void> {
      const r = record(input.decision.eventId);
      if (input.url.includes('fail')) {
        r.deliveryFailures++;
        throw ApplicationFailure.nonRetryable(`callback ${input.url} answered HTTP 500`, 'MockCallbackError');
      }
      r.delivered++;
    },
  };
  const consumerActivities = {
    async predictForConsumer(input: {
      event: { id: string; type: string; time: string };
      consumer: string;
      model: { name: string; version: number };
      features: Record<string, unknown>;
    }): Promise<PredictionRecord> {
      const behaviour = String(input.features.behaviour);
      if (behaviour === 'slow') {
        await Context.current().sleep(10_000);
      }
      if (behaviour === 'broken') throw ApplicationFailure.nonRetryable(`model ${input.model.name} failed`, 'MockModelError');
      const prediction = Number(behaviour.replace(/^ok-/, ''));
      return {
        id: `${input.event.type}:${input.event.id}:${input.consumer}`,
        eventId: input.event.id,
        eventType: input.event.type,
        consumer: input.consumer,
        model: input.model,
        prediction,
        time: input.event.time,
      };
    },
  };
  return { main, consumerActivities, records };
}

export function streamEvent(id: string, callbackUrl?: string): StreamEvent {
  return { id, type: 'ride', payload: { trip_distance: 3 }, time: '2024-01-01T00:00:00.000Z', ...(callbackUrl ? { callbackUrl } : {}) };
}

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}
