// Streaming fan-out activities. On the main task queue: plan an event (routing + feature
// checks, dead-lettering what is invalid), decide, deliver the decision to a callback. On
// each consumer's task queue: predict with that consumer's model and append the prediction.
// Every write is keyed by (event, consumer) or the event, so retries never duplicate.
import { ApplicationFailure } from '@temporalio/activity';
import { describeValue } from '../src/registry/features.ts';
import { DataPlane, outcomeOf } from '../src/inference/data-plane.ts';
import { validatorFor } from '../src/registry/resolver.ts';
import { ModelNotFoundError } from '../src/registry/store.ts';
import { callbackRefusal } from '../src/streaming/callback.ts';
import { insertDeadLetter } from '../src/streaming/dead-letters.ts';
import { decisionsTotal, predictionsTotal } from '../src/streaming/metrics.ts';
import { decide, rejection } from '../src/streaming/policy.ts';
import { consumerTaskQueue, currentRouting, type ConsumerConfig } from '../src/streaming/routing.ts';
import type { StreamingSettings } from '../src/streaming/settings.ts';
import {
  predictionRecordId,
  type ConsumerOutcome,
  type ConsumerPlan,
  type Decision,
  type DecisionPolicy,
  type ModelId,
  type PredictionRecord,
  type StreamEvent,
} from '../src/streaming/types.ts';
import type { ActivityDeps } from './deps.ts';

/** The inference path for consumers: resolve is done by planning (the plan pins the version). */
const plane = new DataPlane({ lane: 'stream' });

export type EventRef = Pick<StreamEvent, 'id' | 'type' | 'time'>;

export type PlanResult = { status: 'planned'; consumers: ConsumerPlan[]; policy: DecisionPolicy } | { status: 'rejected'; decision: Decision };

export interface PredictInput {
  event: EventRef;
  consumer: string;
  model: ModelId;
  features: Record<string, unknown>;
}

/** What a consumer's worker needs: only the model cache and the streams. */
export function createConsumerActivities({ models, streamSampler }: Pick<ActivityDeps, 'models' | 'streamSampler'>, settings: StreamingSettings) {
  return {
    async predictForConsumer(input: PredictInput): Promise<PredictionRecord> {
      const labels = { consumer: input.consumer, model: input.model.name, version: String(input.model.version) };
      try {
        return await predictAndAppend(input, labels);
      } catch (err) {
        predictionsTotal.inc({ ...labels, status: 'error' });
        throw err;
      }
    },
  };

  async function predictAndAppend(input: PredictInput, labels: { consumer: string; model: string; version: string }): Promise<PredictionRecord> {
    const model = await models.get(input.model);
    const result = await plane.many(model, [input.features]);
    const outcome = outcomeOf(result, 0);
    if (!outcome || result.errors.length > 0) {
      throw ApplicationFailure.nonRetryable(`${model.name}@${model.version} rejected the features: ${result.errors.map((e) => e.reason).join('; ')}`, 'FeatureError');
    }
    const record: PredictionRecord = {
      id: predictionRecordId(input.event.type, input.event.id, input.consumer),
      eventId: input.event.id,
      eventType: input.event.type,
      consumer: input.consumer,
      model: { name: model.name, version: model.version },
      prediction: outcome.prediction!,
      // A classifier's label and class probabilities (the decision policy can test them).
      ...(outcome.classification ? { label: outcome.classification.label, probabilities: outcome.classification.probabilities } : {}),
      time: new Date().toISOString(),
    };
    const stored = await (await settings.backend()).append('predictions', record.id, record);
    predictionsTotal.inc({ ...labels, status: stored.created ? 'ok' : 'duplicate' });
    // Monitoring (docs/monitoring.md): a sample of the features, when the model has a prediction-stream monitor.
    await streamSampler?.record(model, input.consumer, input.event.type, [{ eventId: input.event.id, features: input.features, prediction: record.prediction }]);
    return stored.value;
  }
}

function countDecision(decision: Decision, created: boolean): void {
  if (created) decisionsTotal.inc({ event_type: decision.eventType, status: decision.status, action: decision.action ?? 'none' });
}

export function createStreamingActivities(deps: ActivityDeps, settings: StreamingSettings) {
  const { pool, models } = deps;

  // The process's one resolver: references are cached, and a promotion is heard at once
  // (LISTEN/NOTIFY), so planning costs no query under load and never plans a stale version.
  const resolver = models.resolver;

  async function planConsumer(event: StreamEvent, consumer: ConsumerConfig): Promise<{ plan?: ConsumerPlan; problems: string[] }> {
    const where = consumer.features ? `payload.${consumer.features}` : 'payload';
    const features = consumer.features ? event.payload[consumer.features] : event.payload;
    if (features === null || typeof features !== 'object' || Array.isArray(features)) {
      return { problems: [`${where} must be a JSON object with the consumer's features, got ${describeValue(features)}`] };
    }
    let version;
    try {
      version = await resolver.resolve(consumer.model);
    } catch (err) {
      // A routing that names an unknown model is a deployment problem, not a bad event:
      // fail the attempt (retried) so events wait for the fix instead of being dead-lettered.
      if (err instanceof ModelNotFoundError) throw new Error(`consumer '${consumer.name}': ${err.message}`);
      throw err;
    }
    // Checked against the version's spec alone: planning never loads a model (that is the consumer queue's job).
    const errors = validatorFor(version).check(features as Record<string, unknown>);
    if (errors.length > 0) return { problems: errors.map((e) => `${where}.${e.reason}`) };
    return {
      problems: [],
      plan: {
        name: consumer.name,
        taskQueue: consumerTaskQueue(consumer),
        model: { name: version.name, version: version.version },
        required: consumer.required,
        features: features as Record<string, unknown>,
        timeoutMs: consumer.timeoutMs,
        maxAttempts: consumer.maxAttempts,
        waitMs: consumer.waitMs,
      },
    };
  }

  async function reject(event: StreamEvent, reasons: string[]): Promise<PlanResult> {
    await insertDeadLetter(pool, { eventType: event.type, eventId: event.id, payload: event.payload, reason: reasons.join('; '), source: 'workflow' });
    const stored = await (await settings.backend()).append('decisions', `${event.type}:${event.id}`, rejection(event, reasons, new Date()));
    countDecision(stored.value, stored.created);
    return { status: 'rejected', decision: stored.value };
  }

  return {
    ...createConsumerActivities(deps, settings),

    /** Reads the routing (fresh for every event) and checks the payload against every consumer's features. */
    async planEvent(event: StreamEvent): Promise<PlanResult> {
      const routing = await currentRouting(settings.routingFile);
      const route = routing.events[event.type];
      if (!route) return reject(event, [`no route for event type '${event.type}' in ${settings.routingFile}`]);
      const planned = await Promise.all(route.consumers.map((c) => planConsumer(event, c)));
      const problems = [...new Set(planned.flatMap((p) => p.problems))];
      if (problems.length > 0) return reject(event, problems);
      return { status: 'planned', consumers: planned.map((p) => p.plan!), policy: route.decision };
    },

    async decideEvent(input: { event: EventRef; policy: DecisionPolicy; outcomes: ConsumerOutcome[] }): Promise<Decision> {
      const decision = decide(input.event, input.policy, input.outcomes, new Date());
      const stored = await (await settings.backend()).append('decisions', decision.id, decision);
      countDecision(stored.value, stored.created);
      return stored.value;
    },

    /** POSTs the decision to the producer's callback; a non-2xx answer is retried by Temporal. */
    async deliverDecision(input: { url: string; decision: Decision }): Promise<void> {
      // Checked here too: events from the JetStream bridge, or emitted before the list changed.
      const refusal = callbackRefusal(input.url, settings.callbackHosts);
      if (refusal) throw ApplicationFailure.nonRetryable(refusal, 'CallbackRefused');
      const response = await fetch(input.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': input.decision.id },
        body: JSON.stringify(input.decision),
        signal: AbortSignal.timeout(10_000),
      });
      if (!response.ok) throw new Error(`callback ${input.url} answered HTTP ${response.status}`);
    },
  };
}
