// Fault injection in batched mode (issue 11): the four scenarios of scenarios.fault.ts, with
// ride_started batched over 4 partitions, plus a fifth: two worker processes, one SIGKILLed
// while it holds partition workflows, the other takes them over. Events are appended through
// EventIngress (the producer path of POST /v1/events and `mldeploy emit`) in an open loop at
// a fixed rate; the workers are real `mldeploy worker` processes, which start the partition
// workflows themselves. After each fault: exactly one decision per event, exactly one
// prediction per (event, consumer), ids equal to the inbound log's, no dead letter, every
// partition committed to its head.
// Sizes: MLDEPLOY_FAULT_BATCHED_EVENTS (default 20,000), MLDEPLOY_FAULT_RATE (events/s,
// default 1,000, at least 500). See docs/reliability.md.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExampleModels } from '../../src/demo.ts';
import { ModelStore } from '../../src/registry/store.ts';
import { checkBatchedStream, committedOffsets, createBatchedDeployment, openProducer, PARTITIONS, partitionWorkers, type Producer } from './batched.ts';
import { openFaultStack, type FaultStack } from './stack.ts';
import { spawnWorker, type Deployment, type WorkerProcess, type WorkerSpec } from './workers.ts';
import { decisionCount, sleep, waitUntil } from './workload.ts';

function sizeFromEnv(name: string, fallback: number, minimum: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < minimum) throw new Error(`${name} must be an integer of at least ${minimum}, got ${JSON.stringify(raw)}`);
  return n;
}

const EVENTS = sizeFromEnv('MLDEPLOY_FAULT_BATCHED_EVENTS', 20_000, 1_000);
const RATE = sizeFromEnv('MLDEPLOY_FAULT_RATE', 1_000, 500);
const RECOVERY_MS = 8 * 60_000;

const SINGLE: WorkerSpec[] = [{ label: 'worker', args: [] }];
const SPLIT: WorkerSpec[] = [
  { label: 'main', args: ['--no-consumers'] },
  { label: 'duration-fare', args: ['--consumers', 'duration,fare'] },
  { label: 'tip', args: ['--consumers', 'tip'] },
];
const TWO: WorkerSpec[] = [
  { label: 'a', args: [] },
  { label: 'b', args: [] },
];

interface ResultRow {
  scenario: string;
  seconds: string;
  rate: string;
  outcome: string;
  detail: string;
}

let stack: FaultStack;
const results: ResultRow[] = [];

beforeAll(async () => {
  stack = await openFaultStack();
  await ensureExampleModels(new ModelStore(stack.pool), 64 * 1024 * 1024);
}, 300_000);

afterAll(async () => {
  if (results.length) {
    const lines = results.map((r) => `| ${r.scenario} | ${EVENTS.toLocaleString('en')} events | ${r.rate} | ${r.seconds} s | ${r.outcome} | ${r.detail} |`);
    console.log(
      [
        '',
        `Batched fault-injection results (${EVENTS} events, offered ${RATE}/s)`,
        '| scenario | size | rate | duration | outcome | at the fault |',
        '|---|---|---|---|---|---|',
        ...lines,
      ].join('\n'),
    );
  }
  await stack?.close();
}, 120_000);

interface ScenarioContext {
  deployment: Deployment;
  workers: Map<string, WorkerProcess>;
  producer: Producer;
  respawn(label: string): Promise<void>;
}

async function runScenario(scenario: string, topology: WorkerSpec[], fault: (ctx: ScenarioContext) => Promise<string>): Promise<void> {
  const deployment = createBatchedDeployment(stack.dir);
  const workers = new Map<string, WorkerProcess>();
  const spawn = async (spec: WorkerSpec) => void workers.set(spec.label, await spawnWorker(stack, deployment, spec));
  await Promise.all(topology.map(spawn));
  const producer = openProducer(stack, deployment);
  const ctx: ScenarioContext = { deployment, workers, producer, respawn: (label) => spawn(topology.find((s) => s.label === label)!) };
  const started = Date.now();
  let rate = '';
  try {
    const half = Math.floor(EVENTS / 2);
    await producer.emit(0, half, RATE);
    const firstHalfRate = half / ((Date.now() - started) / 1000);
    rate = `${RATE}/s offered, ${firstHalfRate.toFixed(0)}/s acknowledged before the fault`;
    // The producer keeps the offered rate (an open loop; the append's commit is its acknowledgement).
    expect(firstHalfRate, 'events acknowledged per second before the fault').toBeGreaterThanOrEqual(500);
    await waitUntil('some decisions', async () => ((await decisionCount(stack.pool, deployment)) ?? 0) > 0, 60_000);
    const decided = (await decisionCount(stack.pool, deployment)) ?? 0;
    const atFault = `${decided}/${EVENTS} decided, ${half} emitted`;

    // The second half is emitted while the fault is in progress.
    const secondHalf = producer.emit(half, EVENTS, RATE);
    const what = await fault(ctx);
    await secondHalf;
    const emittedAt = Date.now();

    await waitUntil(
      `${EVENTS} decisions and every partition committed`,
      async () => {
        const offsets = await committedOffsets(stack.pool, deployment);
        if (!offsets || (await decisionCount(stack.pool, deployment)) !== EVENTS) return false;
        const { rows } = await stack.pool.query('SELECT count(*)::int AS n FROM inbound_heads WHERE log = $1 AND committed_offset < last_offset', [
          `${deployment.streamNamespace}.ride_started`,
        ]);
        return rows[0].n === 0;
      },
      RECOVERY_MS,
    );
    const drained = ((Date.now() - emittedAt) / 1000).toFixed(0);
    const check = await checkBatchedStream(stack.pool, deployment);
    expect(check).toEqual({
      inbound: EVENTS,
      predictions: 3 * EVENTS,
      distinctEventConsumers: 3 * EVENTS,
      decisions: EVENTS,
      distinctDecidedEvents: EVENTS,
      decidedWithAllThree: EVENTS,
      undecided: 0,
      unknownDecisions: 0,
      unknownPredictions: 0,
      mismatches: 0,
      deadLetters: 0,
      partitionsBehind: 0,
    });
    for (const w of workers.values()) expect(w.unexpectedExit()).toBeNull();
    results.push({
      scenario,
      rate,
      seconds: ((Date.now() - started) / 1000).toFixed(0),
      outcome: 'exactly once',
      detail: `${what}; ${atFault}; ${producer.stats.retried} emits retried; drained ${drained} s after the last emit`,
    });
  } catch (err) {
    // What the workers said and where the partition workflows are: the failure's context.
    const states = await Promise.all(
      [...Array(PARTITIONS).keys()].map(async (p) => {
        const d = await stack.client.workflow
          .getHandle(`stream-${deployment.streamNamespace}-ride_started-p${p}`)
          .describe()
          .catch((e: Error) => ({ status: { name: `unknown (${e.message})` }, raw: { pendingActivities: [] } }));
        return `p${p}: ${d.status.name}, pending ${JSON.stringify((d.raw.pendingActivities ?? []).map((a) => [a.activityType?.name, a.attempt, a.lastFailure?.message]))}`;
      }),
    );
    const outputs = [...workers.values()].map((w) => `--- worker ${w.label}:\n${w.output().slice(-2000)}`);
    const offsets = await committedOffsets(stack.pool, deployment);
    (err as Error).message +=
      `\npartition workflows: ${states.join('; ')}\ncommitted: ${JSON.stringify([...(offsets ?? [])])}; producer ${JSON.stringify(producer.stats)}\n${outputs.join('\n')}`;
    results.push({
      scenario,
      rate,
      seconds: ((Date.now() - started) / 1000).toFixed(0),
      outcome: 'FAILED',
      detail: String((err as Error).message)
        .split('\n')[0]
        .slice(0, 160),
    });
    throw err;
  } finally {
    await producer.close();
    await Promise.all([...workers.values()].map((w) => w.stop()));
  }
}

describe('fault injection, batched mode', () => {
  it('batched: SIGKILL a worker process mid-batch, then restart it', async () => {
    await runScenario('batched: SIGKILL worker', SINGLE, async ({ workers, respawn }) => {
      const pid = workers.get('worker')!.child.pid;
      await workers.get('worker')!.kill();
      await respawn('worker');
      return `worker pid ${pid} killed, restarted`;
    });
  });

  it('batched: restart Temporal mid-run (persistent dev server)', async () => {
    await runScenario('batched: restart Temporal', SINGLE, async () => {
      const down = Date.now();
      await stack.stopTemporal();
      await stack.startTemporal();
      return `server down ${((Date.now() - down) / 1000).toFixed(0)} s`;
    });
  });

  it('batched: stop PostgreSQL for 10 s mid-run', async () => {
    await runScenario('batched: stop PostgreSQL 10 s', SINGLE, async () => {
      await stack.stopPostgres();
      await sleep(10_000);
      await stack.startPostgres();
      return 'database down 10 s';
    });
  });

  it('batched: kill the tip consumer worker for 30 s', async () => {
    await runScenario('batched: kill tip consumer 30 s', SPLIT, async ({ deployment, workers, respawn }) => {
      const tipPredictions = async () =>
        (
          await stack.pool.query(
            // A range record counts its predictions.
            `SELECT coalesce(sum(coalesce(jsonb_array_length(record->'offsets'), 1)), 0)::int AS n FROM stream_records WHERE stream = $1 AND record->>'consumer' = 'tip'`,
            [`${deployment.streamNamespace}.predictions`],
          )
        ).rows[0].n as number;
      await workers.get('tip')!.kill();
      // A batch the tip worker had started may still be writing its appends: let them land.
      await sleep(1_000);
      const afterKill = await tipPredictions();
      await sleep(29_000);
      // Nobody else serves tip's queue: no tip prediction was made while its worker was down.
      expect(await tipPredictions()).toBe(afterKill);
      await respawn('tip');
      return `tip worker down 30 s (${afterKill} tip predictions held)`;
    });
  });

  it('batched: SIGKILL one of two workers while it holds partitions; the other takes them over', async () => {
    await runScenario('batched: SIGKILL 1 of 2 workers', TWO, async ({ deployment, workers }) => {
      const label = new Map([...workers.values()].map((w) => [String(w.child.pid), w.label]));
      const holderOf = async (p: number) => label.get((await partitionWorkers(stack, deployment, p)).at(-1)?.split('@')[0] ?? '');
      const holders = await Promise.all([...Array(PARTITIONS).keys()].map(holderOf));
      const count = (l: string) => holders.filter((h) => h === l).length;
      const victim = count('a') >= count('b') ? 'a' : 'b';
      const survivor = victim === 'a' ? 'b' : 'a';
      const held = holders.flatMap((h, p) => (h === victim ? [p] : []));
      expect(held.length, `partitions held by worker ${victim} (holders ${holders.join(',')})`).toBeGreaterThan(0);
      const before = (await committedOffsets(stack.pool, deployment))!;
      const killedAt = Date.now();
      await workers.get(victim)!.kill();
      // The survivor picks the victim's partition workflows up (their sticky queue's tasks time
      // out, then replay from history) and carries on from their committed offsets. A decision
      // the victim had in flight can still commit just after `before` was read: wait for the
      // survivor's own workflow tasks too, not only for the offsets to move.
      const ranSince = async (p: number) => (await partitionWorkers(stack, deployment, p, killedAt + 1_000)).length > 0;
      await waitUntil(
        `worker ${survivor} to run and commit the partitions of worker ${victim}`,
        async () => {
          const now = await committedOffsets(stack.pool, deployment);
          if (!now || !held.every((p) => (now.get(p) ?? 0) > (before.get(p) ?? 0))) return false;
          return (await Promise.all(held.map(ranSince))).every(Boolean);
        },
        RECOVERY_MS,
      );
      for (const p of held) {
        const after = (await partitionWorkers(stack, deployment, p, killedAt + 1_000)).map((id) => label.get(id.split('@')[0]));
        expect(after.length, `workflow tasks of partition ${p} after the kill`).toBeGreaterThan(0);
        expect(new Set(after), `who ran partition ${p} after the kill`).toEqual(new Set([survivor]));
      }
      return `worker ${victim} killed holding partitions ${held.join(',')} (committed ${held.map((p) => before.get(p)).join(',')}); ${survivor} took them over`;
    });
  });
});
