// One event, one short workflow: plan (routing + feature checks), run every consumer's
// prediction in parallel on that consumer's own task queue, decide, and hand the decision
// back (as the result, and to a callback when the producer gave one). History stays small:
// about a dozen events per run.
import { log, proxyActivities, proxyLocalActivities, upsertSearchAttributes } from '@temporalio/workflow';
import { failureReason } from './failures.ts';
import type { Activities } from '../activities/index.ts';
import type { ConsumerOutcome, ConsumerPlan, Decision, StreamEvent } from '../src/streaming/types.ts';
import { DECISION_ACTION, DECISION_STATUS } from './search-attributes.ts';

// Planning and deciding run next to the workflow (local activities): two fewer round trips
// through the server per event. Both are idempotent and retried until they succeed, so a
// broken routing file makes events wait for the fix rather than fail.
const { planEvent, decideEvent } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '10 seconds' },
});

const { deliverDecision } = proxyActivities<Activities>({
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute', maximumAttempts: 8 },
});

async function runConsumer(event: StreamEvent, consumer: ConsumerPlan): Promise<ConsumerOutcome> {
  const { predictForConsumer } = proxyActivities<Activities>({
    taskQueue: consumer.taskQueue,
    startToCloseTimeout: consumer.timeoutMs,
    // Optional consumers bound the whole wait, queueing included (their workers may be down).
    scheduleToCloseTimeout: consumer.waitMs,
    retry: { initialInterval: '100 milliseconds', backoffCoefficient: 2, maximumInterval: '5 seconds', maximumAttempts: consumer.maxAttempts },
  });
  try {
    const record = await predictForConsumer({
      event: { id: event.id, type: event.type, time: event.time },
      consumer: consumer.name,
      model: consumer.model,
      features: consumer.features,
    });
    const { label, probabilities } = record;
    return { consumer: consumer.name, status: 'ok', prediction: record.prediction, model: record.model, ...(probabilities ? { label, probabilities } : {}) };
  } catch (err) {
    return { consumer: consumer.name, status: 'missing', required: consumer.required, reason: failureReason(err) };
  }
}

export async function eventFanout(event: StreamEvent): Promise<Decision> {
  const plan = await planEvent(event);
  let decision: Decision;
  if (plan.status === 'rejected') {
    decision = plan.decision;
  } else {
    const outcomes = await Promise.all(plan.consumers.map((c) => runConsumer(event, c)));
    decision = await decideEvent({ event: { id: event.id, type: event.type, time: event.time }, policy: plan.policy, outcomes });
  }
  upsertSearchAttributes([
    { key: DECISION_STATUS, value: decision.status },
    { key: DECISION_ACTION, value: decision.action ?? 'none' },
  ]);
  if (event.callbackUrl) {
    try {
      await deliverDecision({ url: event.callbackUrl, decision });
    } catch (err) {
      // The decision stands and is in the decision stream; the producer can still read it there.
      log.warn('callback failed for good', { url: event.callbackUrl, reason: failureReason(err) });
    }
  }
  return decision;
}
