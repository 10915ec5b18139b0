// Records workflow histories for the replay test (test/workflows/replay.test.ts), which
// replays every test/fixtures/histories/*.pb on today's workflow code in `npm test`.
//
//   node --import tsx scripts/record-histories.ts                     # every recorder below
//   node --import tsx scripts/record-histories.ts eventFanout         # one workflow's scenarios
//   node --import tsx scripts/record-histories.ts batchScoring--cancelled
//
// It starts its own in-memory dev server (the project's `temporal` CLI, as the tests find it),
// runs each scenario on the current workflows/ code with the mocked activities of
// test/workflows/support.ts, and writes `<workflow>--<scenario>.pb` (one file per run:
// `-run2`, `-run3` … for a continue-as-new chain). Histories depend only on the workflow code,
// so mocked activities record the same commands as real ones.
//
// Record before a workflow change, commit the files, then change the code: the replay test
// then proves that workflows started on the old code still replay (or that a patched()
// branch is needed). batch-scoring-1..3.pb were recorded from real runs before the
// cancellation patch; never overwrite them.
//
// Adding a workflow: append a Recorder to RECORDERS: its exported name, the workers it needs
// (setup) and its scenarios (start a workflow, return its handle; the script waits for it to
// close, whatever the outcome). Then remove its name from NOT_YET_RECORDED in the replay test.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import proto from '@temporalio/proto';
import { batchActivities, batchJob, consumer, createLocalEnv, fanoutActivities, startWorker, streamEvent, unique, waitFor, type EventPlans } from '../test/workflows/support.ts';
import { partitionActivities, partitionEvents } from '../test/workflows/partition-support.ts';
import { partitionActivityQueue } from '../src/streaming/partition-types.ts';

const HISTORIES = path.resolve('test/fixtures/histories');

interface Ctx {
  env: TestWorkflowEnvironment;
  /** The task queue the recorder's workflows run on (a worker with workflows/ polls it once setup ran). */
  taskQueue: string;
  /** Starts a worker (stopped at the end); withWorkflows false for activity-only queues. */
  worker(taskQueue: string, activities: object, withWorkflows?: boolean): Promise<void>;
}

interface Recorder {
  workflow: string;
  setup(ctx: Ctx): Promise<void>;
  scenarios: Record<string, (ctx: Ctx) => Promise<WorkflowHandle>>;
}

// ---------------------------------------------------------------- batchScoring
const batch = batchActivities({ chunks: 6, slowMs: 30_000 });
const batchScoring: Recorder = {
  workflow: 'batchScoring',
  setup: (ctx) => ctx.worker(ctx.taskQueue, batch.activities),
  scenarios: {
    async succeeded({ env, taskQueue }) {
      return env.client.workflow.start('batchScoring', { taskQueue, workflowId: unique('batch-rec'), args: [batchJob('rec-succeeded', { parallelism: 2 })] });
    },
    async 'continue-as-new'({ env, taskQueue }) {
      return env.client.workflow.start('batchScoring', { taskQueue, workflowId: unique('batch-rec'), args: [batchJob('rec-can', { parallelism: 2, chunksPerRun: 4 })] });
    },
    async 'failed-chunk'({ env, taskQueue }) {
      return env.client.workflow.start('batchScoring', { taskQueue, workflowId: unique('batch-rec'), args: [batchJob('rec-fail-chunk-1', { parallelism: 1 })] });
    },
    async cancelled({ env, taskQueue }) {
      const handle = await env.client.workflow.start('batchScoring', { taskQueue, workflowId: unique('batch-rec'), args: [batchJob('rec-slow', { parallelism: 2 })] });
      await waitFor('chunks in flight', async () => (await handle.describe()).raw.pendingActivities?.length === 2);
      await handle.cancel();
      return handle;
    },
    /** Recorded on the code before the batch-drift-alert patch as `drifted`, after it as `drifted-alert`. */
    async drifted({ env, taskQueue }) {
      return env.client.workflow.start('batchScoring', { taskQueue, workflowId: unique('batch-rec'), args: [batchJob('rec-drifted', { parallelism: 2 })] });
    },
    async 'drifted-alert'({ env, taskQueue }) {
      return env.client.workflow.start('batchScoring', { taskQueue, workflowId: unique('batch-rec'), args: [batchJob('rec-drifted-alert', { parallelism: 2 })] });
    },
  },
};

// ---------------------------------------------------------------- monitorRun
/** The monitor's id steers the mocked window profile: `drifted` or stable; `down` makes the alert webhook fail for good. */
const monitorRun: Recorder = {
  workflow: 'monitorRun',
  setup: (ctx) =>
    ctx.worker(ctx.taskQueue, {
      async profileMonitorWindow(input: { monitorId: string; runId: string; window: { from: string; to: string } }) {
        const drifted = input.monitorId.includes('drifted');
        return {
          runId: input.runId,
          monitorId: input.monitorId,
          model: { name: 'mock-model', version: 3 },
          window: input.window,
          status: 'finished',
          rows: 120,
          drift: { drifted, driftedShare: drifted ? 1 : 0, features: drifted ? ['trip_distance'] : [], predictionPsi: drifted ? 0.4 : 0.01 },
        };
      },
      async sendDriftAlert() {
        if (monitorDown) throw ApplicationFailure.nonRetryable('drift alert webhook http://hooks.test/drift answered HTTP 404', 'PermanentAlertError');
        return { sent: true, url: 'http://hooks.test/drift', status: 200, repeated: false };
      },
    }),
  scenarios: {
    async drifted({ env, taskQueue }) {
      monitorDown = false;
      return env.client.workflow.start('monitorRun', { taskQueue, workflowId: unique('monitor-rec'), args: [{ monitorId: 'monitor-drifted', everyMs: 3_600_000 }] });
    },
    async stable({ env, taskQueue }) {
      return env.client.workflow.start('monitorRun', { taskQueue, workflowId: unique('monitor-rec'), args: [{ monitorId: 'monitor-stable', everyMs: 3_600_000 }] });
    },
    async 'alert-refused'({ env, taskQueue }) {
      monitorDown = true;
      return env.client.workflow.start('monitorRun', { taskQueue, workflowId: unique('monitor-rec'), args: [{ monitorId: 'monitor-drifted-down', everyMs: 3_600_000 }] });
    },
  },
};
let monitorDown = false;

// ---------------------------------------------------------------- eventFanout
const plans: EventPlans = new Map();
const fanout = fanoutActivities(plans);
const CONSUMER_QUEUE = 'record-consumer';
function fanoutScenario(id: string, plan: EventPlans extends Map<string, infer P> ? P : never, callbackUrl?: string) {
  return async ({ env, taskQueue }: Ctx) => {
    plans.set(id, plan);
    return env.client.workflow.start('eventFanout', { taskQueue, workflowId: `event-ride-${id}`, args: [streamEvent(id, callbackUrl)] });
  };
}
const eventFanout: Recorder = {
  workflow: 'eventFanout',
  async setup(ctx) {
    await ctx.worker(ctx.taskQueue, fanout.main);
    await ctx.worker(CONSUMER_QUEUE, fanout.consumerActivities, false);
  },
  scenarios: {
    decided: fanoutScenario(
      'decided',
      { consumers: [consumer('risk', 'ok-0.9', true, CONSUMER_QUEUE), consumer('eta', 'ok-12', false, CONSUMER_QUEUE)] },
      'http://producer.test/decisions',
    ),
    'optional-timeout': fanoutScenario('optional-timeout', { consumers: [consumer('risk', 'ok-0.2', true, CONSUMER_QUEUE), consumer('eta', 'slow', false, CONSUMER_QUEUE, 300)] }),
    'required-failed': fanoutScenario('required-failed', { consumers: [consumer('risk', 'broken', true, CONSUMER_QUEUE), consumer('eta', 'ok-12', false, CONSUMER_QUEUE)] }),
    rejected: fanoutScenario('rejected', { rejected: ["trip_distance must be a number, got 'x'"] }, 'http://producer.test/decisions'),
    'callback-failed': fanoutScenario('callback-failed', { consumers: [consumer('risk', 'ok-0.2', true, CONSUMER_QUEUE)] }, 'http://producer.test/fail'),
  },
};

// ---------------------------------------------------------------- streamPartition
// A partition workflow never ends by itself: each scenario terminates it once the mocked log
// has been decided (and, for continue-as-new, once the chain has a second run). The
// continue-as-new scenario reaches CLAIMS_PER_RUN through idle claims (awaitEvents answers at
// once), so the workflow's behaviour is the shipped one.
const PARTITION_CONSUMER_QUEUE = 'record-partition-consumer';
const partition = partitionActivities(PARTITION_CONSUMER_QUEUE);
function partitionScenario(name: string, events: Array<{ id: string; invalid?: boolean }>, more: Array<{ id: string; invalid?: boolean }> = [], idleMs = 200) {
  return async ({ env, taskQueue }: Ctx) => {
    const ref = { eventType: `rec_${name.replace(/-/g, '_')}`, partition: 0 };
    partition.add(ref, events, { batchMax: 5, idleMs });
    const handle = await env.client.workflow.start('streamPartition', { taskQueue, workflowId: unique(`stream-rec-${name}`), args: [{ ...ref, namespace: 'rec' }] });
    await waitFor('the first events decided', () => partition.committed(ref) === events.length, 60_000);
    if (idleMs < 10) {
      await waitFor('a continue-as-new', async () => (await handle.describe()).runId !== handle.firstExecutionRunId, 120_000);
    }
    partition.add(ref, more);
    await waitFor('every event decided', () => partition.committed(ref) === events.length + more.length, 60_000);
    await sleep(300); // an idle claim after the last batch
    await handle.terminate('recorded');
    return handle;
  };
}
const streamPartition: Recorder = {
  workflow: 'streamPartition',
  async setup(ctx) {
    await ctx.worker(ctx.taskQueue, partition.main);
    await ctx.worker(PARTITION_CONSUMER_QUEUE, partition.consumer, false);
    await ctx.worker(partitionActivityQueue(ctx.taskQueue), partition.main, false);
  },
  scenarios: {
    batches: partitionScenario('batches', partitionEvents('rec-batches', 12), partitionEvents('rec-batches-more', 4)),
    'invalid-event': partitionScenario('invalid-event', partitionEvents('rec-invalid', 9, [5])),
    'continue-as-new': partitionScenario('continue-as-new', partitionEvents('rec-can', 6), partitionEvents('rec-can-more', 3), 1),
  },
};

// ---------------------------------------------------------------- modelFollower
// MLflow's alias names version 1, then 2, then a broken 3; one check (three attempts) cannot reach MLflow. The
// follower continues as new every 3 checks; the scenario terminates it after the second run.
const rejected3 = { mlflowVersion: '3', rejected: 'onnxruntime cannot load the file' };
const followOutcomes = [{ mlflowVersion: '1', version: 1 }, { mlflowVersion: '2', version: 2 }, rejected3, 'unreachable', 'unreachable', 'unreachable', rejected3];
let followChecks = 0;
const modelFollower: Recorder = {
  workflow: 'modelFollower',
  setup: (ctx) =>
    ctx.worker(ctx.taskQueue, {
      async followMlflowAlias() {
        const outcome = followOutcomes[Math.min(followChecks++, followOutcomes.length - 1)];
        if (outcome === 'unreachable') throw new Error('cannot reach the MLflow tracking server');
        return outcome;
      },
    }),
  scenarios: {
    async 'promote-reject'({ env, taskQueue }) {
      const args = { name: 'rec-followed', alias: 'production', from: 'models:/rec@champion', trackingUri: 'http://mlflow.test', everyMs: 10, checksPerRun: 3 };
      const handle = await env.client.workflow.start('modelFollower', { taskQueue, workflowId: unique('model-follower-rec'), args: [args] });
      await waitFor('a continue-as-new', async () => (await handle.describe()).runId !== handle.firstExecutionRunId, 60_000);
      await waitFor('checks after the unreachable one', () => followChecks >= followOutcomes.length + 2, 60_000);
      await handle.terminate('recorded');
      return handle;
    },
  },
};

/** Every workflow whose histories are recorded. */
const RECORDERS: Recorder[] = [batchScoring, eventFanout, streamPartition, modelFollower, monitorRun];

async function main(selection: string[]): Promise<void> {
  const wanted = (workflow: string, scenario: string) => selection.length === 0 || selection.includes(workflow) || selection.includes(`${workflow}--${scenario}`);
  const env = await createLocalEnv();
  const stops: (() => Promise<void>)[] = [];
  const written: string[] = [];
  try {
    for (const recorder of RECORDERS) {
      const scenarios = Object.entries(recorder.scenarios).filter(([name]) => wanted(recorder.workflow, name));
      if (scenarios.length === 0) continue;
      const ctx: Ctx = {
        env,
        taskQueue: unique(`record-${recorder.workflow}`),
        async worker(taskQueue, activities, withWorkflows = true) {
          const w = await startWorker(env, taskQueue, activities, withWorkflows);
          stops.push(w.stop);
        },
      };
      await recorder.setup(ctx);
      for (const [name, run] of scenarios) {
        const handle = await run(ctx);
        await handle.result().catch(() => undefined); // failed and cancelled runs are scenarios too
        // Every run of the workflow id (a continue-as-new chain has several), once visibility has them all closed.
        let runs: Awaited<ReturnType<typeof handle.describe>>[] = [];
        await waitFor('the runs in visibility', async () => {
          runs = [];
          for await (const wf of env.client.workflow.list({ query: `WorkflowId = "${handle.workflowId}"` })) runs.push(wf as (typeof runs)[number]);
          return runs.length > 0 && runs.every((r) => r.status.name !== 'RUNNING') && runs.some((r) => r.status.name !== 'CONTINUED_AS_NEW');
        });
        runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
        for (const [i, wf] of runs.entries()) {
          const history = await env.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
          const file = `${recorder.workflow}--${name}${runs.length > 1 ? `-run${i + 1}` : ''}.pb`;
          fs.writeFileSync(path.join(HISTORIES, file), proto.temporal.api.history.v1.History.encode(history).finish());
          written.push(`${file} (${history.events?.length ?? 0} events, ${wf.status.name})`);
        }
      }
    }
  } finally {
    for (const stop of stops.reverse()) await stop();
    await env.teardown();
  }
  if (written.length === 0) throw new Error(`nothing matched ${selection.join(' ')}; workflows: ${RECORDERS.map((r) => r.workflow).join(', ')}`);
  process.stdout.write(`recorded into ${path.relative(process.cwd(), HISTORIES)}:\n${written.map((w) => `  ${w}\n`).join('')}`);
}

await main(process.argv.slice(2));
