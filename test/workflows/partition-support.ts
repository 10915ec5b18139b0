// streamPartition's activities, mocked over an in-memory inbound log, for the workflow unit
// tests and scripts/record-histories.ts. They keep the real activities' contracts
// (activities/stream-partition.ts): a watch reports the head, committed offset and plan (with
// the partition's batchMax); consumers asked to check a range skip and name its invalid
// events; decisions commit their range and report the head; (claim loop) claims return offset
// ranges after `after` up to batchMax events with the invalid ones named. They count every
// call, so a test sees each offset decided and scored exactly once and the ranges decided
// back to back across continue-as-new.
import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import type {
  BatchConsumerPlan,
  ClaimedBatch,
  ClaimInput,
  ConsumerBatchInput,
  ConsumerBatchResult,
  DecideBatchInput,
  DecideBatchResult,
  PartitionProgress,
  PartitionRef,
  WatchInput,
} from '../../src/streaming/partition-types.ts';
import type { DecisionPolicy } from '../../src/streaming/types.ts';

export const PARTITION_POLICY: DecisionPolicy = { rules: [{ when: { risk: { gt: 0.5 } }, action: 'review', reason: 'risk above 0.5' }], default: 'approve' };

export interface MockEvent {
  id: string;
  invalid?: boolean;
  callback?: boolean;
}

export interface MockPartition {
  /** Events by offset - 1; `invalid` ones fail validation; `callback` ones name a callback URL. */
  events: MockEvent[];
  committed: number;
  batchMax: number;
  /** How long awaitEvents waits for an event when there is none (the workflow asks for 5 s). */
  idleMs: number;
}

export interface DecideCall {
  runId: string;
  partition: number;
  from: number;
  to: number;
  invalid: number[];
}

/** Mocked partition activities over in-memory partitions (key: `<eventType>/<partition>`). */
export function partitionActivities(consumerQueue: string, consumerNames: string[] = ['risk', 'eta']) {
  const partitions = new Map<string, MockPartition>();
  /** Claims (claim loop) and watches (range loop): where each asked from. */
  const claims: Array<{ runId: string; partition: number; after: number | undefined; to: number }> = [];
  const decides: DecideCall[] = [];
  /** Callbacks delivered per offset, by partition key. */
  const delivered = new Map<string, Map<number, number>>();
  /** Decisions per offset, and scores per (offset, consumer), by partition key. */
  const decided = new Map<string, Map<number, number>>();
  const scored = new Map<string, Map<string, number>>();
  const key = (ref: PartitionRef) => `${ref.eventType}/${ref.partition}`;
  const partition = (ref: PartitionRef) => {
    const p = partitions.get(key(ref));
    if (!p) throw new Error(`no mock partition ${key(ref)}`);
    return p;
  };
  const count = <K>(map: Map<string, Map<K, number>>, k: string, inner: K) => {
    let m = map.get(k);
    if (!m) map.set(k, (m = new Map()));
    m.set(inner, (m.get(inner) ?? 0) + 1);
  };
  const runId = () => Context.current().info.workflowExecution?.runId ?? '';
  const plans: BatchConsumerPlan[] = consumerNames.map((name) => ({
    name,
    taskQueue: consumerQueue,
    model: { name: `${name}-model`, version: 1 },
    required: true,
    timeoutMs: 5_000,
    maxAttempts: 3,
  }));

  const progressOf = (p: MockPartition): PartitionProgress => ({
    head: p.events.length,
    committed: p.committed,
    plan: { consumers: plans, policy: PARTITION_POLICY, batchMax: p.batchMax },
  });
  const invalidIn = (p: MockPartition, from: number, to: number) => {
    const invalid: number[] = [];
    for (let o = from; o <= to; o++) if (p.events[o - 1].invalid) invalid.push(o);
    return invalid;
  };

  const main = {
    async watchPartition(input: WatchInput): Promise<PartitionProgress> {
      const p = partition(input);
      const until = Date.now() + Math.min(input.waitMs, p.idleMs);
      while (p.events.length <= input.after && Date.now() < until) await sleep(5);
      claims.push({ runId: runId(), partition: input.partition, after: input.after, to: p.events.length });
      return progressOf(p);
    },
    async claimBatch(input: ClaimInput): Promise<ClaimedBatch> {
      const p = partition(input);
      const after = input.after ?? p.committed;
      const head = p.events.length;
      const to = Math.min(head, after + p.batchMax);
      const invalid = invalidIn(p, after + 1, to);
      claims.push({ runId: runId(), partition: input.partition, after: input.after, to });
      return { after, to, count: to - after, head, invalid, consumers: to > after ? plans : [], policy: PARTITION_POLICY };
    },
    async decideBatch(input: DecideBatchInput): Promise<DecideBatchResult> {
      const p = partition(input);
      const rangeLoop = input.consumers !== undefined;
      // The range loop: the invalid events are those the consumers found (all of them when none answered).
      const answered = input.outcomes.filter((o) => o.status === 'ok');
      const found = answered.length > 0 ? [...new Set(answered.flatMap((o) => o.invalid ?? []))].sort((a, b) => a - b) : invalidIn(p, input.from, input.to);
      decides.push({ runId: runId(), partition: input.partition, from: input.from, to: input.to, invalid: rangeLoop ? found : input.invalid });
      for (let o = input.from; o <= input.to; o++) count(decided, key(input), o);
      p.committed = Math.max(p.committed, input.to);
      const result = { decided: input.to - input.from + 1, callbacks: p.events.slice(input.from - 1, input.to).filter((e) => e.callback).length };
      return rangeLoop ? { ...result, progress: progressOf(p) } : result;
    },
    async awaitEvents(input: PartitionRef & { after: number; waitMs: number }): Promise<void> {
      const p = partition(input);
      const until = Date.now() + Math.min(input.waitMs, p.idleMs);
      while (p.events.length <= input.after && Date.now() < until) await sleep(5);
    },
    async deliverBatchCallbacks(input: PartitionRef & { from: number; to: number }): Promise<void> {
      const p = partition(input);
      await sleep(20); // a callback takes a moment
      for (let o = input.from; o <= input.to; o++) if (p.events[o - 1].callback) count(delivered, key(input), o);
    },
  };
  const consumer = {
    async scoreConsumerBatch(input: ConsumerBatchInput): Promise<ConsumerBatchResult> {
      const invalid = input.check ? invalidIn(partition(input), input.from, input.to) : undefined;
      const skip = new Set(invalid ?? input.skip);
      let n = 0;
      for (let o = input.from; o <= input.to; o++) {
        if (skip.has(o)) continue;
        count(scored, key(input), `${o}/${input.consumer}`);
        n++;
      }
      return { scored: n, failed: [], ...(invalid ? { invalid } : {}) };
    },
  };

  return {
    main,
    consumer,
    claims,
    decides,
    /** Adds a partition (or more events to it). */
    add(ref: PartitionRef, events: MockEvent[], options: Partial<Omit<MockPartition, 'events'>> = {}) {
      const p = partitions.get(key(ref)) ?? { events: [], committed: 0, batchMax: 5, idleMs: 200 };
      p.events.push(...events);
      Object.assign(p, options);
      partitions.set(key(ref), p);
    },
    committed: (ref: PartitionRef) => partition(ref).committed,
    /** How many times each offset was decided (offset -> count). */
    decisions: (ref: PartitionRef) => decided.get(key(ref)) ?? new Map<number, number>(),
    /** How many times each offset's callback was delivered (offset -> count). */
    callbacks: (ref: PartitionRef) => delivered.get(key(ref)) ?? new Map<number, number>(),
    /** How many times each (offset, consumer) was scored ("offset/consumer" -> count). */
    scores: (ref: PartitionRef) => scored.get(key(ref)) ?? new Map<string, number>(),
  };
}

export const partitionEvents = (prefix: string, n: number, invalidAt: number[] = [], callbacks = false): MockEvent[] =>
  Array.from({ length: n }, (_, i) => ({ id: `${prefix}-${i + 1}`, ...(invalidAt.includes(i + 1) ? { invalid: true } : {}), ...(callbacks ? { callback: true } : {}) }));
