// Batched fan-out activities. On the main task queue, beside the partition workflow: claim
// the next offset range (checking every event against every consumer's feature spec,
// dead-lettering what is invalid), decide a range, deliver its callbacks. On each consumer's
// task queue: score a range with that consumer's model in one call and append the
// predictions. Every write is keyed by (event, consumer) or by the event, so a retried or
// repeated batch never duplicates anything.
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Pool } from '../src/db/pool.ts';
import { DataPlane } from '../src/inference/data-plane.ts';
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
  PartitionRef,
} from '../src/streaming/partition-types.ts';
import { decide, rejection } from '../src/streaming/policy.ts';
import { consumerTaskQueue, loadRouting, type ConsumerConfig } from '../src/streaming/routing.ts';
import type { StreamingSettings } from '../src/streaming/settings.ts';
import { decisionRecordId, predictionRecordId, type ConsumerOutcome, type Decision, type PredictionRecord } from '../src/streaming/types.ts';

export interface PartitionActivityDeps {
  pool: Pool;
  store: ModelStore;
  models: ModelCache;
  settings: StreamingSettings;
  inbound: InboundLog;
}

/** Consumers score a batch in slices through the data plane (lane 'stream'), as single events do. */
const plane = new DataPlane({ lane: 'stream' });

/** Scores consumer batches: needs only the model cache, the inbound log and the streams. */
export function createConsumerBatchActivities({ models, settings, inbound }: Pick<PartitionActivityDeps, 'models' | 'settings' | 'inbound'>) {
  return {
    async scoreConsumerBatch(input: ConsumerBatchInput): Promise<ConsumerBatchResult> {
      const labels = { consumer: input.consumer, model: input.model.name, version: String(input.model.version) };
      const skip = new Set(input.skip);
      const events = (await inbound.readPayloads(input.eventType, input.partition, input.from, input.to, input.features)).filter((e) => !skip.has(e.offset));
      if (events.length === 0) return { scored: 0, failed: [] };
      const model = await models.get(input.model);
      const { predictions, errors } = await plane.many(
        model,
        events.map((e) => e.value as Record<string, unknown>),
      );
      const failed = errors.map((e) => ({ offset: events[e.index].offset, reason: `${model.name}@${model.version} rejected the features: ${e.field}: ${e.reason}` }));
      const time = new Date().toISOString();
      const backend = await settings.backend();
      const appends: Promise<{ created: boolean }>[] = [];
      events.forEach((e, i) => {
        const prediction = predictions[i];
        if (prediction === null) return;
        const record: PredictionRecord = {
          id: predictionRecordId(input.eventType, e.id, input.consumer),
          eventId: e.id,
          eventType: input.eventType,
          consumer: input.consumer,
          model: { name: model.name, version: model.version },
          prediction,
          time,
        };
        appends.push(backend.append('predictions', record.id, record));
      });
      const stored = await Promise.all(appends);
      const created = stored.filter((s) => s.created).length;
      predictionsTotal.inc({ ...labels, status: 'ok' }, created);
      if (stored.length > created) predictionsTotal.inc({ ...labels, status: 'duplicate' }, stored.length - created);
      if (failed.length > 0) predictionsTotal.inc({ ...labels, status: 'error' }, failed.length);
      return { scored: stored.length, failed };
    },
  };
}

export function createPartitionActivities(deps: PartitionActivityDeps) {
  const { pool, models, settings, inbound } = deps;

  async function planConsumer(consumer: ConsumerConfig): Promise<{ plan: BatchConsumerPlan; validator: FeatureValidator }> {
    let version: ModelVersion;
    try {
      // The process's one resolver: cached, and a promotion is heard at once (LISTEN/NOTIFY).
      version = await models.resolver.resolve(consumer.model);
    } catch (err) {
      // A routing naming an unknown model is a deployment problem, not a bad event: the claim
      // is retried, so the partition waits for the fix instead of dead-lettering everything.
      if (err instanceof ModelNotFoundError) throw new Error(`consumer '${consumer.name}': ${err.message}`);
      throw err;
    }
    return {
      // Payloads are checked against the spec alone: no onnxruntime session on the main queue.
      validator: validatorFor(version),
      plan: {
        name: consumer.name,
        taskQueue: consumerTaskQueue(consumer),
        model: { name: version.name, version: version.version },
        ...(consumer.features === undefined ? {} : { features: consumer.features }),
        required: consumer.required,
        timeoutMs: consumer.timeoutMs,
        maxAttempts: consumer.maxAttempts,
        ...(consumer.waitMs === undefined ? {} : { waitMs: consumer.waitMs }),
      },
    };
  }

  /** Problems of each event (by position) against every consumer's features; empty when valid. */
  function validate(payloads: Record<string, unknown>[], consumers: Array<{ plan: BatchConsumerPlan; validator: FeatureValidator }>): string[][] {
    const problems = payloads.map(() => new Set<string>());
    for (const { plan, validator } of consumers) {
      const where = plan.features ? `payload.${plan.features}` : 'payload';
      const records: Record<string, unknown>[] = [];
      const positions: number[] = [];
      payloads.forEach((payload, i) => {
        const features = plan.features ? payload[plan.features] : payload;
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

  function deadLetter(ref: PartitionRef, events: Array<{ id: string; payload: unknown; reason: string }>): Promise<void> {
    return insertDeadLetters(
      pool,
      events.map((e) => ({ eventType: ref.eventType, eventId: e.id, payload: e.payload, reason: e.reason, source: 'workflow' })),
    );
  }

  return {
    ...createConsumerBatchActivities(deps),

    /** Resolves once the partition has events after `after`, or after waitMs. */
    async awaitEvents(input: PartitionRef & { after: number; waitMs: number }): Promise<void> {
      await inbound.waitForEvents(input.eventType, input.partition, input.after, input.waitMs);
    },

    /**
     * The next offset range of a partition (empty when there is nothing after `after`); waits up
     * to the route's linger for a fuller batch. Reads the routing fresh, so its changes apply from the
     * next batch.
     */
    async claimBatch(input: ClaimInput): Promise<ClaimedBatch> {
      const routing = await loadRouting(settings.routingFile);
      const route = routing.events[input.eventType];
      let head = await inbound.head(input.eventType, input.partition);
      const after = input.after ?? head.committed;
      const policy = route?.decision ?? { rules: [], default: 'none' };
      const empty = { after, to: after, count: 0, head: head.last, invalid: [], consumers: [], policy };
      partitionLag.set({ event_type: input.eventType, partition: String(input.partition) }, head.last - after);
      if (head.last <= after) return empty;
      const batchMax = route?.batchMax ?? 500;
      if (route && route.lingerMs > 0 && head.last - after < batchMax) {
        await new Promise((resolve) => setTimeout(resolve, route.lingerMs));
        head = await inbound.head(input.eventType, input.partition);
      }
      const to = Math.min(head.last, after + batchMax);
      const events = await inbound.readPayloads(input.eventType, input.partition, after + 1, to);
      batchSize.observe({ event_type: input.eventType }, events.length);
      if (!route) {
        // The event type's route is gone: its events are rejected with the reason, never lost.
        const reason = `no route for event type '${input.eventType}' in ${settings.routingFile}`;
        await deadLetter(
          input,
          events.map((e) => ({ id: e.id, payload: e.value, reason })),
        );
        return { ...empty, to, count: events.length, head: head.last, invalid: events.map((e) => e.offset) };
      }
      const consumers = await Promise.all(route.consumers.map(planConsumer));
      const problems = validate(
        events.map((e) => e.value as Record<string, unknown>),
        consumers,
      );
      const invalid = events.flatMap((e, i) => (problems[i].length > 0 ? [{ id: e.id, offset: e.offset, payload: e.value, reason: problems[i].join('; ') }] : []));
      await deadLetter(input, invalid);
      return { after, to, count: events.length, head: head.last, invalid: invalid.map((e) => e.offset), consumers: consumers.map((c) => c.plan), policy: route.decision };
    },

    /**
     * Decides every event of a range from the predictions its consumers appended, appends the
     * decisions in offset order and commits the range.
     */
    async decideBatch(input: DecideBatchInput): Promise<DecideBatchResult> {
      const events = await inbound.readMeta(input.eventType, input.partition, input.from, input.to);
      const backend = await settings.backend();
      const invalid = new Set(input.invalid);
      const reasons = new Map<string, string>();
      if (invalid.size > 0) {
        const ids = events.filter((e) => invalid.has(e.offset)).map((e) => e.id);
        const { rows } = await pool.query('SELECT event_id, reason FROM dead_letters WHERE event_type = $1 AND event_id = ANY($2::text[])', [input.eventType, ids]);
        for (const r of rows) reasons.set(r.event_id, r.reason);
      }
      const wanted = input.outcomes
        .filter((o) => o.status === 'ok')
        .flatMap((o) => events.filter((e) => !invalid.has(e.offset)).map((e) => predictionRecordId(input.eventType, e.id, o.consumer)));
      const predictions = await backend.find<PredictionRecord>('predictions', wanted);
      const failedBy = new Map(input.outcomes.map((o) => [o.consumer, new Map(o.status === 'ok' ? o.failed.map((f) => [f.offset, f.reason]) : [])]));
      const now = new Date();
      const decisions: Decision[] = events.map((e) => {
        const event = { id: e.id, type: input.eventType };
        if (invalid.has(e.offset)) return rejection(event, [reasons.get(e.id) ?? 'the event failed validation'], now);
        const outcomes: ConsumerOutcome[] = input.outcomes.map((o) => {
          if (o.status === 'missing') return { consumer: o.consumer, status: 'missing', required: o.required, reason: o.reason };
          const record = predictions.get(predictionRecordId(input.eventType, e.id, o.consumer));
          if (record) return { consumer: o.consumer, status: 'ok', prediction: record.prediction, model: record.model };
          const reason = failedBy.get(o.consumer)?.get(e.offset) ?? 'no prediction was stored';
          return { consumer: o.consumer, status: 'missing', required: o.required, reason };
        });
        return decide(event, input.policy, outcomes, now);
      });
      const stored = await Promise.all(decisions.map((d) => backend.append('decisions', d.id, d)));
      for (const s of stored) {
        if (s.created) decisionsTotal.inc({ event_type: s.value.eventType, status: s.value.status, action: s.value.action ?? 'none' });
      }
      await inbound.commit(input.eventType, input.partition, input.to);
      return { decided: events.length, callbacks: events.filter((e) => e.value.callbackUrl).length };
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
