// Batched fan-out: one long-lived workflow per (event type, partition) consumes the inbound
// log, the Temporal counterpart of a Kinesis shard consumer. It knows the partition's head
// from its activities' results; in a loop it takes the next offset range up to the head (no
// activity needed: offsets are dense and immutable once appended), runs every consumer's
// batch activity on that consumer's own task queue, then decides the range (in offset order,
// so events sharing a key are decided in emit order) and commits it. Each decision reports
// the new head, so under load the next batch leaves as soon as a slot frees, and an idle
// partition watches the log. Only offsets, counts and failed offsets pass through history;
// continue-as-new bounds it.
import { continueAsNew, defineQuery, patched, proxyActivities, proxyLocalActivities, setHandler, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import { failureReason } from './failures.ts';
import type { PartitionActivities } from '../activities/stream-partition.ts';
import {
  partitionActivityQueue,
  type BatchConsumerPlan,
  type ClaimedBatch,
  type ConsumerBatchOutcome,
  type PartitionInput,
  type PartitionPlan,
  type PartitionProgress,
  type PartitionStatus,
} from '../src/streaming/partition-types.ts';

/** Batches whose consumers may run at once (their decisions still happen in order), unless the plan says otherwise. */
const MAX_IN_FLIGHT = 3;
/** Claims per run before continue-as-new (each claim adds a handful of history events). */
const CLAIMS_PER_RUN = 400;
/** How long an idle partition's claim waits for an event before the loop goes round again. */
const IDLE_WAIT_MS = 5_000;

export const partitionStatusQuery = defineQuery<PartitionStatus>('status');

/** patched() ids of this workflow (docs/versioning.md lists them). */
export const PATCHES = {
  callbacksBeforeContinueAsNew: 'partition-callbacks-before-continue-as-new',
  /** Ranges taken in the workflow from reported heads, instead of one claim activity per batch. */
  rangeLoop: 'partition-range-loop',
  /** The range loop decides as a local activity: one activity hop and one workflow task fewer per batch. */
  localDecide: 'partition-local-decide',
} as const;

// Claim and decide are ordinary activities on the main task queue, not local ones: a local
// activity holds the workflow task open until it ends, which would hold back the consumer
// activities of the next batch (measured: 80-180 ms of dispatch delay per batch). Both are
// idempotent and retried until they succeed, so a broken routing file or a database outage
// makes the partition wait, never skip.
const MAIN_ACTIVITY_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '10 seconds' },
};
const CALLBACK_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute', maximumAttempts: 8 },
};
// (claim loop) on the main task queue.
const { claimBatch, decideBatch } = proxyActivities<PartitionActivities>(MAIN_ACTIVITY_OPTIONS);
const { deliverBatchCallbacks } = proxyActivities<PartitionActivities>(CALLBACK_OPTIONS);

const { awaitEvents } = proxyActivities<PartitionActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds' },
});

async function runConsumer(
  input: PartitionInput,
  batch: Pick<ClaimedBatch, 'after' | 'to' | 'invalid' | 'consumers'>,
  consumer: BatchConsumerPlan,
  check = false,
): Promise<ConsumerBatchOutcome> {
  const { scoreConsumerBatch } = proxyActivities<PartitionActivities>({
    taskQueue: consumer.taskQueue,
    startToCloseTimeout: consumer.timeoutMs,
    // Optional consumers bound the whole wait, queueing included (their workers may be down).
    scheduleToCloseTimeout: consumer.waitMs,
    retry: { initialInterval: '100 milliseconds', backoffCoefficient: 2, maximumInterval: '5 seconds', maximumAttempts: consumer.maxAttempts },
  });
  try {
    const result = await scoreConsumerBatch({
      eventType: input.eventType,
      partition: input.partition,
      from: batch.after + 1,
      to: batch.to,
      consumer: consumer.name,
      model: consumer.model,
      ...(consumer.features === undefined ? {} : { features: consumer.features }),
      ...(check ? { check: batch.consumers.map(({ name, model, features }) => ({ name, model, ...(features === undefined ? {} : { features }) })) } : { skip: batch.invalid }),
    });
    return { consumer: consumer.name, required: consumer.required, status: 'ok', failed: result.failed, ...(result.invalid ? { invalid: result.invalid } : {}) };
  } catch (err) {
    return { consumer: consumer.name, required: consumer.required, status: 'missing', reason: failureReason(err) };
  }
}

/** The outcomes of consecutive ranges whose consumers all answered, as one range's. */
function mergeOutcomes(ranges: ConsumerBatchOutcome[][]): ConsumerBatchOutcome[] {
  return ranges[0].map((first, i) => {
    const all = ranges.map((r) => r[i] as Extract<ConsumerBatchOutcome, { status: 'ok' }>);
    const invalid = all.flatMap((o) => o.invalid ?? []);
    return { ...first, status: 'ok', failed: all.flatMap((o) => o.failed), ...(invalid.length > 0 ? { invalid } : {}) } as ConsumerBatchOutcome;
  });
}

export async function streamPartition(input: PartitionInput): Promise<void> {
  const ref = { eventType: input.eventType, partition: input.partition };
  const startedAt = Date.now();
  let committed = input.committed;
  let claimed = input.committed;
  let head = 0;
  let lastBatchSize = 0;
  let decidedThisRun = 0;
  /** Batches whose consumers or decision are running (the claim loop also tracks callbacks here). */
  const inFlight = new Set<Promise<void>>();
  /** The range loop's callbacks and log watch: they never hold a batch slot. */
  const background = new Set<Promise<void>>();
  // Decisions are made one batch after another, in offset order.
  let decisions: Promise<void> = Promise.resolve();

  setHandler(partitionStatusQuery, () => {
    const seconds = (Date.now() - startedAt) / 1000;
    return {
      ...ref,
      committed: committed ?? 0,
      claimed: claimed ?? 0,
      head,
      lag: Math.max(0, head - (committed ?? 0)),
      eventsPerSecond: seconds > 0 ? decidedThisRun / seconds : 0,
      lastBatchSize,
      batchesInFlight: inFlight.size,
      decided: (input.decided ?? 0) + decidedThisRun,
    };
  });

  function track(work: Promise<void>, set = inFlight): void {
    set.add(work);
    void work.finally(() => set.delete(work));
  }

  /** Runs a range's consumers, then (after the previous range's) its decision. */
  function dispatch(
    batch: Omit<ClaimedBatch, 'head' | 'count'>,
    range?: { plan: PartitionPlan; progressed: (progress: PartitionProgress) => void; decide: typeof decideBatch; deliver: typeof deliverBatchCallbacks },
  ): void {
    const from = batch.after + 1;
    const outcomes = batch.to === batch.after ? Promise.resolve([]) : Promise.all(batch.consumers.map((c) => runConsumer(input, batch, c, range !== undefined)));
    const decided = decisions.then(async () => {
      const more = range ? { consumers: range.plan.consumers, ...(range.plan.unrouted === undefined ? {} : { unrouted: range.plan.unrouted }) } : {};
      const result = await (range?.decide ?? decideBatch)({ ...ref, from, to: batch.to, invalid: batch.invalid, policy: batch.policy, outcomes: await outcomes, ...more });
      committed = batch.to;
      decidedThisRun += result.decided;
      if (range && result.progress) range.progressed(result.progress);
      // Callbacks do not hold up the partition: the decisions are in the stream already.
      if (result.callbacks > 0)
        track(
          (range?.deliver ?? deliverBatchCallbacks)({ ...ref, from, to: batch.to }).catch(() => undefined),
          range ? background : inFlight,
        );
    });
    decisions = decided;
    track(decided);
  }

  /** (local decisions) Ranges sent to their consumers, in offset order, each until it is decided. */
  const queued: Array<{ batch: Omit<ClaimedBatch, 'head' | 'count'>; plan: PartitionPlan; planKey: string; outcomes?: ConsumerBatchOutcome[]; settle: (err?: unknown) => void }> =
    [];
  let deciding = false;

  /**
   * Runs a range's consumers; its decision comes once they answered and every range before it
   * is decided. Ranges whose consumers all answered by then are decided together, in one call:
   * under load the decisions keep pace with the consumers instead of queueing one by one.
   */
  function dispatchMerged(
    batch: Omit<ClaimedBatch, 'head' | 'count'>,
    range: { plan: PartitionPlan; progressed: (progress: PartitionProgress) => void; decide: typeof decideBatch; deliver: typeof deliverBatchCallbacks },
  ): void {
    const decided = new Promise<void>((resolve, reject) => {
      const entry: (typeof queued)[number] = {
        batch,
        plan: range.plan,
        planKey: JSON.stringify([range.plan, batch.policy]),
        settle: (err) => (err === undefined ? resolve() : reject(err)),
      };
      queued.push(entry);
      void Promise.all(batch.consumers.map((c) => runConsumer(input, batch, c, true))).then((outcomes) => {
        entry.outcomes = outcomes;
        void decideReady(range);
      });
    });
    track(decided);
  }

  async function decideReady(range: { progressed: (progress: PartitionProgress) => void; decide: typeof decideBatch; deliver: typeof deliverBatchCallbacks }): Promise<void> {
    if (deciding) return;
    deciding = true;
    try {
      while (queued[0]?.outcomes) {
        const take = [queued[0]];
        const allOk = (e: (typeof queued)[number]) => e.outcomes!.every((o) => o.status === 'ok');
        while (queued[take.length]?.outcomes && allOk(take[0]) && allOk(queued[take.length]) && queued[take.length].planKey === take[0].planKey) take.push(queued[take.length]);
        const { batch, plan } = take[0];
        const from = batch.after + 1;
        const to = take[take.length - 1].batch.to;
        const outcomes = take.length === 1 ? take[0].outcomes! : mergeOutcomes(take.map((e) => e.outcomes!));
        try {
          const more = { consumers: plan.consumers, ...(plan.unrouted === undefined ? {} : { unrouted: plan.unrouted }), starts: take.map((e) => e.batch.after + 1) };
          const result = await range.decide({ ...ref, from, to, invalid: [], policy: batch.policy, outcomes, ...more });
          queued.splice(0, take.length);
          committed = to;
          decidedThisRun += result.decided;
          if (result.progress) range.progressed(result.progress);
          // Callbacks do not hold up the partition: the decisions are in the stream already.
          if (result.callbacks > 0)
            track(
              range.deliver({ ...ref, from, to }).catch(() => undefined),
              background,
            );
          for (const e of take) e.settle();
        } catch (err) {
          for (const e of queued.splice(0)) e.settle(err);
        }
      }
    } finally {
      deciding = false;
    }
  }

  /** The claim loop (runs started before the range loop): one claim activity per batch. */
  async function claimLoop(): Promise<void> {
    for (let claims = 0; claims < CLAIMS_PER_RUN && !workflowInfo().continueAsNewSuggested; claims++) {
      if (inFlight.size >= MAX_IN_FLIGHT) {
        await Promise.race(inFlight);
        continue;
      }
      const batch = await claimBatch({ ...ref, ...(claimed === undefined ? {} : { after: claimed }) });
      head = batch.head;
      committed ??= batch.after;
      claimed = batch.to;
      if (batch.to === batch.after) {
        // Nothing new: wait for a batch in flight, or (idle) for the next event.
        if (inFlight.size > 0) await Promise.race(inFlight);
        else await awaitEvents({ ...ref, after: claimed, waitMs: IDLE_WAIT_MS });
        continue;
      }
      lastBatchSize = batch.count;
      dispatch(batch);
    }
  }

  /**
   * The range loop: the next range is (claimed, head], at most batchMax events, sent as soon as
   * a batch slot is free. Heads and plans come back with each decision, or from a watch of the
   * log when nothing is known beyond what is already sent.
   */
  async function rangeLoop(): Promise<void> {
    // Its own activities run on the partition activity queue beside the main one (slots of their own).
    const taskQueue = partitionActivityQueue(workflowInfo().taskQueue);
    const { decideBatch: decideRemotely, watchPartition } = proxyActivities<PartitionActivities>({ ...MAIN_ACTIVITY_OPTIONS, taskQueue });
    // A decision is short and in order, one at a time: as a local activity it runs as soon as
    // the consumers' results arrive, without a trip through a task queue and another workflow
    // task. It holds the workflow task meanwhile, which only delays what waits for it anyway.
    const { decideBatch: decideLocally } = proxyLocalActivities<PartitionActivities>(MAIN_ACTIVITY_OPTIONS);
    const local = patched(PATCHES.localDecide);
    const decide = local ? decideLocally : decideRemotely;
    const { deliverBatchCallbacks: deliver } = proxyActivities<PartitionActivities>({ ...CALLBACK_OPTIONS, taskQueue });
    let plan: PartitionPlan;
    let watching: Promise<void> | undefined;
    const progressed = (progress: PartitionProgress) => {
      head = Math.max(head, progress.head);
      plan = progress.plan;
    };
    const send = (batch: Omit<ClaimedBatch, 'head' | 'count'>) => (local ? dispatchMerged : dispatch)(batch, { plan: plan!, progressed, decide, deliver });
    // A run started afresh sends the ranges its predecessor left undecided first, exactly as
    // they were: their consumers' prediction records are keyed by range.
    const start = await watchPartition({ ...ref, after: committed ?? 0, waitMs: 0, ...(input.committed === undefined ? { recover: true } : {}) });
    committed ??= start.committed;
    claimed = committed;
    progressed(start);
    for (const range of start.pending ?? []) {
      if (range.after !== claimed) break;
      send({ ...range, invalid: [], consumers: plan!.consumers, policy: plan!.policy });
      claimed = range.to;
    }
    // Each batch and each watch adds a handful of history events: both count toward the run's bound.
    for (let steps = 0; steps < CLAIMS_PER_RUN && !workflowInfo().continueAsNewSuggested; steps++) {
      // The plan comes from activity results, so a replay sees the bound the run saw.
      const maxInFlight = plan!.maxInFlight ?? MAX_IN_FLIGHT;
      if (head > claimed && inFlight.size < maxInFlight) {
        const to = Math.min(head, claimed + plan!.batchMax);
        lastBatchSize = to - claimed;
        send({ after: claimed, to, invalid: [], consumers: plan!.consumers, policy: plan!.policy });
        claimed = to;
        continue;
      }
      if (head <= claimed && !watching && inFlight.size < maxInFlight) {
        // Nothing known beyond what is sent, and a batch slot free: watch the log beside the
        // batches in flight (with every slot taken, the next decision brings the head instead).
        const watch = watchPartition({ ...ref, after: claimed, waitMs: IDLE_WAIT_MS }).then(progressed);
        watching = watch.finally(() => (watching = undefined));
        track(watching, background);
      } else steps--;
      await Promise.race([...inFlight, ...(watching ? [watching] : [])]);
    }
  }

  if (patched(PATCHES.rangeLoop)) await rangeLoop();
  else await claimLoop();

  await Promise.all(inFlight);
  // The last decisions schedule their batches' callbacks as they finish, after the wait above
  // began: wait for those too, or the run closes with them pending and they are never
  // delivered nor retried. Behind patched(): runs that continued as new without waiting replay.
  if (inFlight.size + background.size > 0 && patched(PATCHES.callbacksBeforeContinueAsNew)) {
    while (inFlight.size + background.size > 0) await Promise.all([...inFlight, ...background]);
  }
  await continueAsNew<typeof streamPartition>({ ...input, committed, decided: (input.decided ?? 0) + decidedThisRun });
}
