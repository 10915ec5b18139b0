// Batched fan-out activities. On each consumer's task queue: check a range's events against
// every consumer's feature spec, score the valid ones with that consumer's model in one call
// and append the predictions. On the main task queue, beside the partition workflow: watch a
// partition for events, decide a range (dead-lettering its invalid events), deliver its
// callbacks. Every write is keyed by (event, consumer) or by the event, so a retried or
// repeated batch never duplicates anything. claimBatch and awaitEvents serve partition
// workflow runs still on the claim loop (docs/versioning.md).
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Pool } from '../src/db/pool.ts';
import { DataPlane, outcomeOf } from '../src/inference/data-plane.ts';
import { describeValue } from '../src/registry/features.ts';
import { validatorFor, type FeatureValidator } from '../src/registry/resolver.ts';
import type { ModelCache } from '../src/registry/runtime.ts';
import { ModelNotFoundError, type ModelStore, type ModelVersion } from '../src/registry/store.ts';
import { callbackRefusal } from '../src/streaming/callback.ts';
import { insertDeadLetters } from '../src/streaming/dead-letters.ts';
import type { InboundLog } from '../src/streaming/inbound-log.ts';
import { batchSize, decisionsTotal, partitionLag, predictionsTotal } from '../src/streaming/metrics.ts';
import type {
  BatchConsumerPlan,
  ClaimedBatch,
  ClaimInput,
  ConsumerBatchInput,
  ConsumerBatchResult,
  DecideBatchInput,
  DecideBatchResult,
  PartitionPlan,
  PartitionProgress,
  PartitionRef,
  WatchInput,
} from '../src/streaming/partition-types.ts';
import { decide, rejection } from '../src/streaming/policy.ts';
import { consumerTaskQueue, currentRouting, type ConsumerConfig } from '../src/streaming/routing.ts';
import type { ActivityDeps } from './deps.ts';
import type { StreamingSettings } from '../src/streaming/settings.ts';
import { appendBatchRecord, pendingRanges, rangePredictions } from '../src/streaming/prediction-batches.ts';
import { decisionRecordId, type ConsumerOutcome, type Decision } from '../src/streaming/types.ts';

export interface PartitionActivityDeps {
  pool: Pool;
  store: ModelStore;
  models: ModelCache;
  settings: StreamingSettings;
  inbound: InboundLog;
}

/** Consumers score a batch in slices through the data plane (lane 'stream'), as single events do. */
const plane = new DataPlane({ lane: 'stream' });

type CheckedConsumer = Pick<BatchConsumerPlan, 'name' | 'features'> & { validator: FeatureValidator };

/** The consumer's features in an event's payload: one field of it, or all of it. */
const featuresOf = (payload: unknown, features: string | undefined): unknown => (features ? (payload as Record<string, unknown> | null)?.[features] : payload);

/** Problems of each event (by position) against every consumer's features; empty when valid. */
function validate(payloads: unknown[], consumers: CheckedConsumer[]): string[][] {
  const problems = payloads.map(() => new Set<string>());
  for (const { features: field, validator } of consumers) {
    const where = field ? `payload.${field}` : 'payload';
    const records: Record<string, unknown>[] = [];
    const positions: number[] = [];
    payloads.forEach((payload, i) => {
      const features = featuresOf(payload, field);
      if (features === null || typeof features !== 'object' || Array.isArray(features)) {
        problems[i].add(`${where} must be a JSON object with the consumer's features, got ${describeValue(features)}`);
      } else {
        records.push(features as Record<string, unknown>);
        positions.push(i);
      }
    });
    for (const e of validator.checkMany(records)) problems[positions[e.index]].add(`${where}.${e.field}: ${e.reason}`);
  }
  return problems.map((p) => [...p]);
}

/** Spec-only validators of the pinned versions a batch's consumers use (no onnxruntime session). */
function checked(models: ModelCache, consumers: ReadonlyArray<Pick<BatchConsumerPlan, 'name' | 'model' | 'features'>>): Promise<CheckedConsumer[]> {
  return Promise.all(
    consumers.map(async (c) => ({ name: c.name, features: c.features, validator: validatorFor(await models.resolver.resolve(`${c.model.name}@${c.model.version}`)) })),
  );
}

/** Scores consumer batches: needs only the model cache, the inbound log and the streams. */
export function createConsumerBatchActivities({
  models,
  settings,
  inbound,
  streamSampler,
}: Pick<PartitionActivityDeps, 'models' | 'settings' | 'inbound'> & Pick<ActivityDeps, 'streamSampler'>) {
  return {
    async scoreConsumerBatch(input: ConsumerBatchInput): Promise<ConsumerBatchResult> {
      const labels = { consumer: input.consumer, model: input.model.name, version: String(input.model.version) };
      const skip = new Set(input.skip);
      let invalid: number[] | undefined;
      let events: Array<{ offset: number; id: string; value: unknown }>;
      if (input.check) {
        // Every consumer checks the events against every consumer's spec, so they all skip the
        // same invalid events; the decision dead-letters them with the reasons.
        const all = await inbound.readPayloads(input.eventType, input.partition, input.from, input.to);
        const problems = validate(
          all.map((e) => e.value),
          await checked(models, input.check),
        );
        invalid = all.filter((_, i) => problems[i].length > 0).map((e) => e.offset);
        events = all.filter((_, i) => problems[i].length === 0).map((e) => ({ ...e, value: featuresOf(e.value, input.features) }));
      } else {
        events = (await inbound.readPayloads(input.eventType, input.partition, input.from, input.to, input.features)).filter((e) => !skip.has(e.offset));
      }
      if (events.length === 0) return { scored: 0, failed: [], ...(invalid ? { invalid } : {}) };
      const model = await models.get(input.model);
      const result = await plane.many(
        model,
        events.map((e) => e.value as Record<string, unknown>),
      );
      const failed = result.errors.map((e) => ({ offset: events[e.index].offset, reason: `${model.name}@${model.version} rejected the features: ${e.field}: ${e.reason}` }));
      const scored = events.flatMap((e, i) => {
        const outcome = outcomeOf(result, i);
        return outcome ? [{ offset: e.offset, id: e.id, prediction: outcome.prediction!, ...(outcome.classification ? { classification: outcome.classification } : {}) }] : [];
      });
      const created = await appendBatchRecord(await settings.backend(), input, { name: model.name, version: model.version }, scored);
      // Monitoring (docs/monitoring.md): a sample of the features, when the model has a prediction-stream monitor.
      const sample = events.flatMap((e, i) =>
        result.predictions[i] === null ? [] : [{ eventId: e.id, features: e.value as Record<string, unknown>, prediction: result.predictions[i]! }],
      );
      await streamSampler?.record(model, input.consumer, input.eventType, sample);
      predictionsTotal.inc({ ...labels, status: 'ok' }, created);
      if (scored.length > created) predictionsTotal.inc({ ...labels, status: 'duplicate' }, scored.length - created);
      if (failed.length > 0) predictionsTotal.inc({ ...labels, status: 'error' }, failed.length);
      return { scored: scored.length, failed, ...(invalid ? { invalid } : {}) };
    },
  };
}

export function createPartitionActivities(deps: PartitionActivityDeps) {
  const { pool, models, settings, inbound } = deps;

  async function planConsumer(consumer: ConsumerConfig): Promise<BatchConsumerPlan> {
    let version: ModelVersion;
    try {
      // The process's one resolver: cached, and a promotion is heard at once (LISTEN/NOTIFY).
      version = await models.resolver.resolve(consumer.model);
    } catch (err) {
      // A routing naming an unknown model is a deployment problem, not a bad event: the activity
      // is retried, so the partition waits for the fix instead of dead-lettering everything.
      if (err instanceof ModelNotFoundError) throw new Error(`consumer '${consumer.name}': ${err.message}`);
      throw err;
    }
    return {
      name: consumer.name,
      taskQueue: consumerTaskQueue(consumer),
      model: { name: version.name, version: version.version },
      ...(consumer.features === undefined ? {} : { features: consumer.features }),
      required: consumer.required,
      timeoutMs: consumer.timeoutMs,
      maxAttempts: consumer.maxAttempts,
      ...(consumer.waitMs === undefined ? {} : { waitMs: consumer.waitMs }),
    };
  }

  /** The event type's consumers and policy as the routing file and the registry say now. */
  async function planOf(eventType: string): Promise<PartitionPlan & { lingerMs: number }> {
    const route = (await currentRouting(settings.routingFile)).events[eventType];
    if (!route) {
      return { consumers: [], policy: { rules: [], default: 'none' }, batchMax: 500, lingerMs: 0, unrouted: `no route for event type '${eventType}' in ${settings.routingFile}` };
    }
    return {
      consumers: await Promise.all(route.consumers.map(planConsumer)),
      policy: route.decision,
      batchMax: route.batchMax,
      maxInFlight: route.maxInFlight,
      lingerMs: route.lingerMs,
    };
  }

  /**
   * Checks events against the consumers' specs (every one is invalid, with that reason, when the
   * route is gone), dead-letters the invalid ones and returns them with their reasons.
   */
  async function deadLetterInvalid(
    ref: PartitionRef,
    events: Array<{ id: string; offset: number; value: unknown }>,
    consumers: BatchConsumerPlan[],
    unrouted: string | undefined,
  ): Promise<Array<{ offset: number; reason: string }>> {
    const problems =
      unrouted !== undefined
        ? events.map(() => [unrouted])
        : validate(
            events.map((e) => e.value),
            await checked(models, consumers),
          );
    const invalid = events.flatMap((e, i) => (problems[i].length > 0 ? [{ ...e, reason: problems[i].join('; ') }] : []));
    await insertDeadLetters(
      pool,
      invalid.map((e) => ({ eventType: ref.eventType, eventId: e.id, payload: e.value, reason: e.reason, source: 'workflow' })),
    );
    return invalid;
  }

  /**
   * The range loop's invalid events of a range, with their reasons, dead-lettered: those the
   * consumers found invalid, every event when the route is gone, and the whole range checked
   * here when no consumer answered (nobody checked it).
   */
  async function invalidEvents(input: DecideBatchInput): Promise<Map<number, string>> {
    const reasons = new Map<number, string>();
    const answered = input.outcomes.filter((o) => o.status === 'ok');
    const suspects = new Set(answered.flatMap((o) => o.invalid ?? []));
    const checkAll = input.unrouted !== undefined || (answered.length === 0 && (input.consumers?.length ?? 0) > 0);
    if (!checkAll && suspects.size === 0) return reasons;
    const events = (await inbound.readPayloads(input.eventType, input.partition, input.from, input.to)).filter((e) => checkAll || suspects.has(e.offset));
    for (const e of await deadLetterInvalid(input, events, input.consumers ?? [], input.unrouted)) reasons.set(e.offset, e.reason);
    return reasons;
  }

  /** The legacy claim loop's invalid events: named by the claim, their reasons in dead_letters. */
  async function claimedInvalid(input: DecideBatchInput, events: Array<{ offset: number; id: string }>): Promise<Map<number, string>> {
    const reasons = new Map<number, string>();
    const invalid = events.filter((e) => input.invalid.includes(e.offset));
    if (invalid.length === 0) return reasons;
    const { rows } = await pool.query('SELECT event_id, reason FROM dead_letters WHERE event_type = $1 AND event_id = ANY($2::text[])', [
      input.eventType,
      invalid.map((e) => e.id),
    ]);
    const byId = new Map<string, string>(rows.map((r) => [r.event_id, r.reason]));
    for (const e of invalid) reasons.set(e.offset, byId.get(e.id) ?? 'the event failed validation');
    return reasons;
  }

  return {
    ...createConsumerBatchActivities(deps),

    /**
     * Where a partition stands: its head, committed offset and plan. With events after `after`
     * it answers at once (after the route's linger, for a fuller batch); otherwise when one
     * arrives, or after waitMs. Reads the routing fresh, so its changes apply from the next batch.
     */
    async watchPartition(input: WatchInput): Promise<PartitionProgress> {
      const { lingerMs, ...plan } = await planOf(input.eventType);
      let head = await inbound.head(input.eventType, input.partition);
      if (head.last <= input.after && input.waitMs > 0) {
        head = await inbound.waitForEvents(input.eventType, input.partition, input.after, input.waitMs);
        if (head.last > input.after && lingerMs > 0 && head.last - input.after < plan.batchMax) {
          await new Promise((resolve) => setTimeout(resolve, lingerMs));
          head = await inbound.head(input.eventType, input.partition);
        }
      }
      partitionLag.set({ event_type: input.eventType, partition: String(input.partition) }, head.last - head.committed);
      if (!input.recover) return { head: head.last, committed: head.committed, plan };
      const consumers = plan.consumers.map((c) => c.name);
      return { head: head.last, committed: head.committed, plan, pending: await pendingRanges(await settings.backend(), input, consumers, head.committed) };
    },

    /** (claim loop) Resolves once the partition has events after `after`, or after waitMs. */
    async awaitEvents(input: PartitionRef & { after: number; waitMs: number }): Promise<void> {
      await inbound.waitForEvents(input.eventType, input.partition, input.after, input.waitMs);
    },

    /**
     * (claim loop) The next offset range of a partition (empty when there is nothing after
     * `after`), its events checked against every consumer's spec; waits up to the route's linger
     * for a fuller batch.
     */
    async claimBatch(input: ClaimInput): Promise<ClaimedBatch> {
      const { lingerMs, ...plan } = await planOf(input.eventType);
      let head = await inbound.head(input.eventType, input.partition);
      const after = input.after ?? head.committed;
      const empty = { after, to: after, count: 0, head: head.last, invalid: [], consumers: [], policy: plan.policy };
      partitionLag.set({ event_type: input.eventType, partition: String(input.partition) }, head.last - after);
      if (head.last <= after) return empty;
      if (lingerMs > 0 && head.last - after < plan.batchMax) {
        await new Promise((resolve) => setTimeout(resolve, lingerMs));
        head = await inbound.head(input.eventType, input.partition);
      }
      const to = Math.min(head.last, after + plan.batchMax);
      const events = await inbound.readPayloads(input.eventType, input.partition, after + 1, to);
      batchSize.observe({ event_type: input.eventType }, events.length);
      const invalid = await deadLetterInvalid(input, events, plan.consumers, plan.unrouted);
      return { after, to, count: events.length, head: head.last, invalid: invalid.map((e) => e.offset), consumers: plan.consumers, policy: plan.policy };
    },

    /**
     * Decides every event of a range from the predictions its consumers appended, appends the
     * decisions in offset order and commits the range. In the range loop it also dead-letters
     * the range's invalid events and reports the partition's head and plan.
     */
    async decideBatch(input: DecideBatchInput): Promise<DecideBatchResult> {
      const rangeLoop = input.consumers !== undefined || input.unrouted !== undefined;
      const backend = await settings.backend();
      const answered = input.outcomes.filter((o) => o.status === 'ok').map((o) => o.consumer);
      // The reads go out together: a decision is on every event's path. A routing that names an
      // unknown model fails the plan here, before anything is written.
      const reading = inbound.readMeta(input.eventType, input.partition, input.from, input.to);
      const [next, events, reasons, predictions] = await Promise.all([
        rangeLoop ? planOf(input.eventType) : undefined,
        reading,
        rangeLoop ? invalidEvents(input) : reading.then((events) => claimedInvalid(input, events)),
        // Predictions of invalid events are never read: their decisions are rejections.
        rangePredictions(backend, input, answered, reading),
      ]);
      if (rangeLoop) batchSize.observe({ event_type: input.eventType }, events.length);
      const failedBy = new Map(input.outcomes.map((o) => [o.consumer, new Map(o.status === 'ok' ? o.failed.map((f) => [f.offset, f.reason]) : [])]));
      const now = new Date();
      const range = { partition: input.partition, from: input.from, to: input.to };
      const decisions: Decision[] = events.map((e): Decision => {
        const event = { id: e.id, type: input.eventType };
        const invalid = reasons.get(e.offset);
        if (invalid !== undefined) return { ...rejection(event, [invalid], now), range };
        const outcomes: ConsumerOutcome[] = input.outcomes.map((o) => {
          if (o.status === 'missing') return { consumer: o.consumer, status: 'missing', required: o.required, reason: o.reason };
          const record = predictions.get(o.consumer)?.get(e.offset);
          if (record) {
            const { label, probabilities } = record;
            return { consumer: o.consumer, status: 'ok', prediction: record.prediction, model: record.model, ...(probabilities ? { label, probabilities } : {}) };
          }
          const reason = failedBy.get(o.consumer)?.get(e.offset) ?? 'no prediction was stored';
          return { consumer: o.consumer, status: 'missing', required: o.required, reason };
        });
        return { ...decide(event, input.policy, outcomes, now), range };
      });
      const stored = await Promise.all(decisions.map((d) => backend.append('decisions', d.id, d)));
      for (const s of stored) {
        if (s.created) decisionsTotal.inc({ event_type: s.value.eventType, status: s.value.status, action: s.value.action ?? 'none' });
      }
      const head = await inbound.commit(input.eventType, input.partition, input.to);
      const result = { decided: events.length, callbacks: events.filter((e) => e.value.callbackUrl).length };
      if (!next) return result;
      const { lingerMs: _linger, ...plan } = next;
      partitionLag.set({ event_type: input.eventType, partition: String(input.partition) }, head.last - input.to);
      return { ...result, progress: { head: head.last, committed: input.to, plan } };
    },

    /**
     * POSTs each decision of a range to its event's callback URL. Delivered offsets are kept in
     * the heartbeat, so a retry only calls the ones that failed.
     */
    async deliverBatchCallbacks(input: PartitionRef & { from: number; to: number }): Promise<void> {
      const context = Context.current();
      const delivered = new Set<number>((context.info.heartbeatDetails as number[] | undefined) ?? []);
      const events = (await inbound.readMeta(input.eventType, input.partition, input.from, input.to)).filter((e) => e.value.callbackUrl && !delivered.has(e.offset));
      const decisions = await (
        await settings.backend()
      ).find<Decision>(
        'decisions',
        events.map((e) => decisionRecordId(input.eventType, e.id)),
      );
      const problems: string[] = [];
      await Promise.all(
        events.map(async (e) => {
          const url = e.value.callbackUrl!;
          const decision = decisions.get(decisionRecordId(input.eventType, e.id));
          const refusal = callbackRefusal(url, settings.callbackHosts);
          if (refusal || !decision) {
            // Refused hosts and missing decisions are final: nothing to retry.
            delivered.add(e.offset);
            return;
          }
          try {
            const response = await fetch(url, {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'idempotency-key': decision.id },
              body: JSON.stringify(decision),
              signal: AbortSignal.timeout(10_000),
            });
            if (!response.ok) throw new Error(`answered HTTP ${response.status}`);
            delivered.add(e.offset);
          } catch (err) {
            problems.push(`callback ${url} for event ${e.id}: ${(err as Error).message}`);
          }
        }),
      );
      context.heartbeat([...delivered]);
      if (problems.length > 0) throw ApplicationFailure.retryable(`${problems.length} callbacks failed: ${problems.slice(0, 3).join('; ')}`, 'CallbackFailed');
    },
  };
}

export type PartitionActivities = ReturnType<typeof createPartitionActivities>;
