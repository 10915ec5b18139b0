// The shapes that travel between producers, the fan-out workflow, its activities and the
// streams. Plain JSON only (they cross Temporal and HTTP), and types only (workflows import
// this file).

/** One business event, as a producer emits it. */
export interface StreamEvent {
  id: string;
  type: string;
  payload: Record<string, unknown>;
  /** ISO time the event happened (or was received). */
  time: string;
  /** Called with the decision (POST, JSON) once it exists. */
  callbackUrl?: string;
}

export interface ModelId {
  name: string;
  version: number;
}

/** What the workflow needs to run one consumer; resolved once per event. */
export interface ConsumerPlan {
  name: string;
  taskQueue: string;
  model: ModelId;
  required: boolean;
  features: Record<string, unknown>;
  timeoutMs: number;
  maxAttempts: number;
  /** Total time to wait for this consumer, queueing included (undefined: no limit). */
  waitMs?: number;
}

export type Comparison = 'gt' | 'gte' | 'lt' | 'lte';

export type Thresholds = Partial<Record<Comparison, number>>;

/** On a consumer's prediction (`{"gt": 30}`), and/or on a classifier's probability of one class (`{"proba.1": {"gt": 0.8}}`). */
export type Condition = Thresholds & { [proba: `proba.${string}`]: Thresholds };

export interface PolicyRule {
  /** Every condition must hold: consumer → comparison → threshold, or consumer → proba.<class> → comparison → threshold. */
  when: Record<string, Condition>;
  action: string;
  reason: string;
}

export interface DecisionPolicy {
  rules: PolicyRule[];
  /** Action when no rule matches. */
  default: string;
}

export interface PredictionRecord {
  id: string;
  eventId: string;
  eventType: string;
  consumer: string;
  model: ModelId;
  prediction: number;
  /** Classifiers: the predicted label and the probability of each class, keyed by class label. */
  label?: string | number;
  probabilities?: Record<string, number>;
  time: string;
}

export type ConsumerOutcome =
  | { consumer: string; status: 'ok'; prediction: number; model: ModelId; label?: string | number; probabilities?: Record<string, number> }
  | { consumer: string; status: 'missing'; required: boolean; reason: string };

export type DecisionStatus = 'decided' | 'failed' | 'rejected';

export interface Decision {
  id: string;
  eventId: string;
  eventType: string;
  status: DecisionStatus;
  /** The policy's action; null when no decision could be made (failed, rejected). */
  action: string | null;
  reasons: string[];
  predictions: Record<string, number>;
  /** Classifier consumers: consumer → label, and consumer → class label → probability. */
  labels?: Record<string, string | number>;
  probabilities?: Record<string, Record<string, number>>;
  missing: string[];
  time: string;
  /** Batched mode: the offset range the event was decided in (its consumers' prediction records start at `from`). */
  range?: { partition: number; from: number; to: number };
}

export const STREAM_NAMES = ['predictions', 'decisions'] as const;
export type StreamName = (typeof STREAM_NAMES)[number];

/** Record ids, unique within a stream: what makes appends idempotent. */
export const predictionRecordId = (eventType: string, eventId: string, consumer: string) => `${eventType}:${eventId}:${consumer}`;
export const decisionRecordId = (eventType: string, eventId: string) => `${eventType}:${eventId}`;

/** One workflow per event: emitting the same event twice finds the same workflow. */
export const eventWorkflowId = (eventType: string, eventId: string) => `event-${eventType}-${eventId}`;
