// Turns the predictions of one event into a decision: rules in priority order, the first
// matching rule's action wins, and the reasons of every matching rule are kept so the
// producer sees all of them. A condition tests a consumer's prediction (`{"gt": 30}`) or,
// for a classifier consumer, its probability of one class (`{"proba.1": {"gt": 0.8}}`, the
// class named by its label).
import { z } from 'zod';
import type { Comparison, Condition, ConsumerOutcome, Decision, DecisionPolicy, StreamEvent, Thresholds } from './types.ts';
import { decisionRecordId } from './types.ts';

const COMPARE: Record<Comparison, (value: number, threshold: number) => boolean> = {
  gt: (v, t) => v > t,
  gte: (v, t) => v >= t,
  lt: (v, t) => v < t,
  lte: (v, t) => v <= t,
};

const PROBA = 'proba.';

const ThresholdsSchema = z
  .object({ gt: z.number(), gte: z.number(), lt: z.number(), lte: z.number() })
  .partial()
  .strict()
  .refine((t) => Object.keys(t).length > 0, 'needs at least one of gt, gte, lt, lte');

/** One consumer's condition in a routing file's rule (src/streaming/routing.ts): thresholds on its prediction and/or on `proba.<class>`. */
export const ConditionSchema = z
  .record(z.string(), z.unknown())
  .superRefine((condition, ctx) => {
    const keys = Object.keys(condition);
    if (keys.length === 0) ctx.addIssue({ code: 'custom', message: 'needs at least one of gt, gte, lt, lte or proba.<class>' });
    for (const key of keys) {
      const value = condition[key];
      if (Object.hasOwn(COMPARE, key)) {
        if (typeof value !== 'number' || !Number.isFinite(value)) ctx.addIssue({ code: 'custom', path: [key], message: 'must be a number' });
      } else if (key.startsWith(PROBA) && key.length > PROBA.length) {
        const parsed = ThresholdsSchema.safeParse(value);
        if (!parsed.success) for (const i of parsed.error.issues) ctx.addIssue({ code: 'custom', path: [key, ...i.path.map(String)], message: i.message });
      } else {
        ctx.addIssue({ code: 'custom', path: [key], message: `unknown condition '${key}': use gt, gte, lt, lte, or proba.<class> with thresholds` });
      }
    }
  })
  .transform((c) => c as Condition);

function holds(thresholds: Thresholds, value: number): boolean {
  return Object.entries(thresholds).every(([op, threshold]) => COMPARE[op as Comparison](value, threshold as number));
}

function conditionHolds(condition: Condition, prediction: number, probabilities: Record<string, number> | undefined): boolean {
  for (const [key, value] of Object.entries(condition)) {
    if (key.startsWith(PROBA)) {
      const p = probabilities?.[key.slice(PROBA.length)];
      // Not a classifier, or no such class: the condition cannot hold.
      if (p === undefined || !holds(value as Thresholds, p)) return false;
    } else if (!COMPARE[key as Comparison](prediction, value as number)) return false;
  }
  return true;
}

/**
 * The action and reasons for one event. `predictions`: consumer → prediction;
 * `probabilities`: classifier consumer → class label → probability.
 */
export function evaluatePolicy(
  policy: DecisionPolicy,
  predictions: Record<string, number>,
  probabilities: Record<string, Record<string, number>> = {},
): { action: string; reasons: string[] } {
  const matched = policy.rules.filter((rule) =>
    Object.entries(rule.when).every(([consumer, condition]) => {
      const value = predictions[consumer];
      // A rule over a missing (optional) consumer cannot hold.
      if (value === undefined) return false;
      return conditionHolds(condition, value, probabilities[consumer]);
    }),
  );
  if (matched.length === 0) return { action: policy.default, reasons: ['no rule matched'] };
  return { action: matched[0].action, reasons: matched.map((r) => r.reason) };
}

export function decide(event: Pick<StreamEvent, 'id' | 'type'>, policy: DecisionPolicy, outcomes: ConsumerOutcome[], now: Date): Decision {
  const predictions: Record<string, number> = {};
  const labels: Record<string, string | number> = {};
  const probabilities: Record<string, Record<string, number>> = {};
  const missing: string[] = [];
  const failures: string[] = [];
  for (const o of outcomes) {
    if (o.status === 'ok') {
      predictions[o.consumer] = o.prediction;
      if (o.label !== undefined) labels[o.consumer] = o.label;
      if (o.probabilities) probabilities[o.consumer] = o.probabilities;
    } else {
      missing.push(o.consumer);
      if (o.required) failures.push(`required consumer '${o.consumer}' failed: ${o.reason}`);
    }
  }
  // Classifier answers are kept beside the predictions (absent when no consumer is a classifier).
  const classified = Object.keys(probabilities).length > 0 ? { labels, probabilities } : {};
  const base = { id: decisionRecordId(event.type, event.id), eventId: event.id, eventType: event.type, predictions, ...classified, missing, time: now.toISOString() };
  if (failures.length > 0) return { ...base, status: 'failed', action: null, reasons: failures };
  const { action, reasons } = evaluatePolicy(policy, predictions, probabilities);
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
