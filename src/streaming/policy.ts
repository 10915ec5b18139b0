// Turns the predictions of one event into a decision: rules in priority order, the first
// matching rule's action wins, and the reasons of every matching rule are kept so the
// producer sees all of them.
import type { Comparison, ConsumerOutcome, Decision, DecisionPolicy, StreamEvent } from './types.ts';
import { decisionRecordId } from './types.ts';

const COMPARE: Record<Comparison, (value: number, threshold: number) => boolean> = {
  gt: (v, t) => v > t,
  gte: (v, t) => v >= t,
  lt: (v, t) => v < t,
  lte: (v, t) => v <= t,
};

export function evaluatePolicy(policy: DecisionPolicy, predictions: Record<string, number>): { action: string; reasons: string[] } {
  const matched = policy.rules.filter((rule) =>
    Object.entries(rule.when).every(([consumer, thresholds]) => {
      const value = predictions[consumer];
      // A rule over a missing (optional) consumer cannot hold.
      if (value === undefined) return false;
      return Object.entries(thresholds).every(([op, threshold]) => COMPARE[op as Comparison](value, threshold as number));
    }),
  );
  if (matched.length === 0) return { action: policy.default, reasons: ['no rule matched'] };
  return { action: matched[0].action, reasons: matched.map((r) => r.reason) };
}

export function decide(event: Pick<StreamEvent, 'id' | 'type'>, policy: DecisionPolicy, outcomes: ConsumerOutcome[], now: Date): Decision {
  const predictions: Record<string, number> = {};
  const missing: string[] = [];
  const failures: string[] = [];
  for (const o of outcomes) {
    if (o.status === 'ok') predictions[o.consumer] = o.prediction;
    else {
      missing.push(o.consumer);
      if (o.required) failures.push(`required consumer '${o.consumer}' failed: ${o.reason}`);
    }
  }
  const base = { id: decisionRecordId(event.type, event.id), eventId: event.id, eventType: event.type, predictions, missing, time: now.toISOString() };
  if (failures.length > 0) return { ...base, status: 'failed', action: null, reasons: failures };
  const { action, reasons } = evaluatePolicy(policy, predictions);
  const notes = outcomes.filter((o) => o.status === 'missing').map((o) => `optional consumer '${o.consumer}' missing: ${o.reason}`);
  return { ...base, status: 'decided', action, reasons: [...reasons, ...notes] };
}

export function rejection(event: Pick<StreamEvent, 'id' | 'type'>, reasons: string[], now: Date): Decision {
  return {
    id: decisionRecordId(event.type, event.id),
    eventId: event.id,
    eventType: event.type,
    status: 'rejected',
    action: null,
    reasons,
    predictions: {},
    missing: [],
    time: now.toISOString(),
  };
}
