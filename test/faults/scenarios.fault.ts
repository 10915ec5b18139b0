// Fault injection (issue 6): each scenario runs a batch run over the seeded rides and a
// stream of events at the same time, injects one fault mid-run, and then checks that every
// row and every event was scored exactly once. Sizes: MLDEPLOY_FAULT_ROWS (default 200,000)
// and MLDEPLOY_FAULT_EVENTS (default 2,000); CI runs the full size. See docs/reliability.md.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFaultStack, type FaultStack } from './stack.ts';
import { spawnWorker, type Deployment, type WorkerProcess, type WorkerSpec } from './workers.ts';
import { batchProgress, batchResult, checkBatch, checkStream, createDeployment, decisionCount, emitRange, seedWorkload, sleep, startBatch, waitUntil } from './workload.ts';

function sizeFromEnv(name: string, fallback: number, minimum: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < minimum) throw new Error(`${name} must be an integer of at least ${minimum}, got ${JSON.stringify(raw)}`);
  return n;
}

const ROWS = sizeFromEnv('MLDEPLOY_FAULT_ROWS', 200_000, 10_000);
const EVENTS = sizeFromEnv('MLDEPLOY_FAULT_EVENTS', 2_000, 100);
const RECOVERY_MS = 10 * 60_000;

/** One plain worker (main queue and every consumer), as docker-compose runs it. */
const SINGLE: WorkerSpec[] = [{ label: 'worker', args: [] }];
/** The event workflows and each consumer in processes of their own. */
const SPLIT: WorkerSpec[] = [
  { label: 'main', args: ['--no-consumers'] },
  { label: 'duration-fare', args: ['--consumers', 'duration,fare'] },
  { label: 'tip', args: ['--consumers', 'tip'] },
];

interface ResultRow {
  scenario: string;
  workload: string;
  size: string;
  seconds: string;
  outcome: string;
  detail: string;
}

let stack: FaultStack;
const results: ResultRow[] = [];

beforeAll(async () => {
  stack = await openFaultStack();
  await seedWorkload(stack, ROWS);
}, 300_000);

afterAll(async () => {
  if (results.length) {
    const header = '| scenario | workload | size | duration | outcome | at the fault |';
    const lines = results.map((r) => `| ${r.scenario} | ${r.workload} | ${r.size} | ${r.seconds} s | ${r.outcome} | ${r.detail} |`);
    console.log(['', `Fault-injection results (${ROWS} rows, ${EVENTS} events)`, header, '|---|---|---|---|---|---|', ...lines].join('\n'));
  }
  await stack?.close();
}, 120_000);

interface ScenarioContext {
  deployment: Deployment;
  workers: Map<string, WorkerProcess>;
  respawn(label: string): Promise<void>;
}

async function runScenario(scenario: string, topology: WorkerSpec[], fault: (ctx: ScenarioContext) => Promise<string>): Promise<void> {
  const deployment = createDeployment(stack.dir);
  const workers = new Map<string, WorkerProcess>();
  const spawn = async (spec: WorkerSpec) => void workers.set(spec.label, await spawnWorker(stack, deployment, spec));
  const ctx: ScenarioContext = {
    deployment,
    workers,
    respawn: (label) => spawn(topology.find((s) => s.label === label)!),
  };
  const row = (workload: string, size: string, start: number, outcome: string, detail: string) =>
    results.push({ scenario, workload, size, seconds: ((Date.now() - start) / 1000).toFixed(0), outcome, detail });
  await Promise.all(topology.map(spawn));
  const started = Date.now();
  let stage = 'batch';
  try {
    const { job, handle } = await startBatch(stack.client, deployment, ROWS);
    const counter = { emitted: 0, retried: 0 };
    const half = Math.floor(EVENTS / 2);
    const firstHalf = emitRange(stack.client, deployment, 0, half, counter);

    // Mid-run: a quarter of the chunks scored, half the events emitted, some decided.
    let chunks = 0;
    let chunksDone = 0;
    let decided = 0;
    await waitUntil(
      'the batch run and the stream to be under way',
      async () => {
        const progress = await batchProgress(handle);
        chunks = progress?.chunks ?? 0;
        chunksDone = progress?.chunksDone ?? 0;
        decided = (await decisionCount(stack.pool, deployment)) ?? 0;
        return chunks > 0 && chunksDone >= Math.ceil(chunks / 4) && counter.emitted >= half && decided > 0;
      },
      RECOVERY_MS,
    );
    await firstHalf;
    expect(chunksDone, 'the fault hits the batch run mid-run').toBeLessThan(chunks);
    const atFault = `${chunksDone}/${chunks} chunks; ${decided}/${EVENTS} decided, ${half} emitted`;

    // The second half is emitted while the fault is in progress.
    const secondHalf = emitRange(stack.client, deployment, half, EVENTS, counter);
    const what = await fault(ctx);
    await secondHalf;

    const summary = await batchResult(handle, RECOVERY_MS);
    const batch = await checkBatch(stack.pool, job, summary);
    expect(batch).toEqual({
      predictions: ROWS,
      distinctIds: ROWS,
      missingIds: 0,
      summaryScored: ROWS,
      runStatus: 'succeeded',
      runRowsScored: ROWS,
      chunkRowsScored: ROWS,
      chunksUnscored: 0,
    });
    row('batch', `${ROWS.toLocaleString('en')} rows`, started, 'exactly once', `${what}; ${atFault.split(';')[0]}`);

    stage = 'stream';
    await waitUntil(`${EVENTS} decisions`, async () => ((await decisionCount(stack.pool, deployment)) ?? 0) >= EVENTS, RECOVERY_MS);
    const stream = await checkStream(stack.pool, deployment);
    expect(stream).toEqual({
      predictions: 3 * EVENTS,
      distinctEventConsumers: 3 * EVENTS,
      distinctPredictedEvents: EVENTS,
      decisions: EVENTS,
      distinctDecidedEvents: EVENTS,
      decidedWithAllThree: EVENTS,
      mismatches: 0,
      deadLetters: 0,
    });
    row('stream', `${EVENTS.toLocaleString('en')} events`, started, 'exactly once', `${what};${atFault.split(';')[1]}; ${counter.retried} emits retried`);

    // Workers reconnected by themselves: none of them ended without being asked to.
    for (const w of workers.values()) expect(w.unexpectedExit()).toBeNull();
  } catch (err) {
    row(
      stage,
      stage === 'batch' ? `${ROWS} rows` : `${EVENTS} events`,
      started,
      'FAILED',
      String((err as Error).message)
        .split('\n')[0]
        .slice(0, 120),
    );
    throw err;
  } finally {
    await Promise.all([...workers.values()].map((w) => w.stop()));
  }
}

describe('fault injection', () => {
  it('SIGKILL a worker process mid-run, then restart it', async () => {
    await runScenario('SIGKILL worker', SINGLE, async ({ workers, respawn }) => {
      const pid = workers.get('worker')!.child.pid;
      await workers.get('worker')!.kill();
      await respawn('worker');
      return `worker pid ${pid} killed, restarted`;
    });
  });

  it('restart Temporal mid-run (persistent dev server)', async () => {
    await runScenario('restart Temporal', SINGLE, async () => {
      const down = Date.now();
      await stack.stopTemporal();
      await stack.startTemporal();
      return `server down ${((Date.now() - down) / 1000).toFixed(0)} s`;
    });
  });

  it('stop PostgreSQL for 10 s mid-run', async () => {
    await runScenario('stop PostgreSQL 10 s', SINGLE, async () => {
      await stack.stopPostgres();
      await sleep(10_000);
      await stack.startPostgres();
      return 'database down 10 s';
    });
  });

  it('kill the tip consumer worker for 30 s', async () => {
    await runScenario('kill tip consumer 30 s', SPLIT, async ({ deployment, workers, respawn }) => {
      const tipPredictions = async () =>
        (await stack.pool.query(`SELECT count(*)::int AS n FROM stream_records WHERE stream = $1 AND record->>'consumer' = 'tip'`, [`${deployment.streamNamespace}.predictions`]))
          .rows[0].n as number;
      await workers.get('tip')!.kill();
      const afterKill = await tipPredictions();
      await sleep(30_000);
      // Nobody else serves tip's queue: no tip prediction was made while its worker was down.
      expect(await tipPredictions()).toBe(afterKill);
      await respawn('tip');
      return `tip worker down 30 s (${afterKill} tip predictions held)`;
    });
  });
});
