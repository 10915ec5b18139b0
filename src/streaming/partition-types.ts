// The shapes batched mode passes between its partition workflow and its activities. Offsets,
// counts, model ids and the offsets of failed events only: event data stays in the inbound
// log and the streams. Types only (the workflow imports this file).
import type { DecisionPolicy, ModelId } from './types.ts';

/** One partition of one event type's inbound log. */
export interface PartitionRef {
  eventType: string;
  partition: number;
}

export interface PartitionInput extends PartitionRef {
  /** The stream namespace, so several deployments on one Temporal namespace keep their workflows apart. */
  namespace: string;
  /** Offset up to which decisions are written; read from the log when absent (a first start). */
  committed?: number;
  /** Decisions made by earlier runs of this workflow (carried over continue-as-new). */
  decided?: number;
}

/** What the workflow needs to run one consumer over a batch. */
export interface BatchConsumerPlan {
  name: string;
  taskQueue: string;
  model: ModelId;
  /** The payload field holding the consumer's features; the whole payload when absent. */
  features?: string;
  required: boolean;
  timeoutMs: number;
  maxAttempts: number;
  waitMs?: number;
}

export interface ClaimInput extends PartitionRef {
  /** Claim offsets after this one; the committed offset when absent. */
  after?: number;
}

export interface ClaimedBatch {
  /** The offset the claim started after. */
  after: number;
  /** Last offset of the batch (== after when nothing was claimed). */
  to: number;
  /** Events in (after, to]; offsets can have gaps. */
  count: number;
  /** The partition's last appended offset when claimed (lag = head - committed). */
  head: number;
  /** Offsets of events that failed validation (dead-lettered; decided as rejected). */
  invalid: number[];
  consumers: BatchConsumerPlan[];
  policy: DecisionPolicy;
}

export interface ConsumerBatchInput extends PartitionRef {
  from: number;
  to: number;
  consumer: string;
  model: ModelId;
  features?: string;
  /** Offsets not to score (invalid events). */
  skip: number[];
}

export interface ConsumerBatchResult {
  scored: number;
  /** Events the model could not score, with the reason. */
  failed: Array<{ offset: number; reason: string }>;
}

export type ConsumerBatchOutcome =
  | { consumer: string; required: boolean; status: 'ok'; failed: Array<{ offset: number; reason: string }> }
  | { consumer: string; required: boolean; status: 'missing'; reason: string };

export interface DecideBatchInput extends PartitionRef {
  from: number;
  to: number;
  invalid: number[];
  policy: DecisionPolicy;
  outcomes: ConsumerBatchOutcome[];
}

export interface DecideBatchResult {
  decided: number;
  /** Events whose decision went to a callback URL. */
  callbacks: number;
}

/** The partition workflow's `status` query. */
export interface PartitionStatus extends PartitionRef {
  committed: number;
  claimed: number;
  head: number;
  lag: number;
  /** Decisions per second over this run of the workflow. */
  eventsPerSecond: number;
  lastBatchSize: number;
  batchesInFlight: number;
  decided: number;
}

/** One workflow per (namespace, event type, partition): starting it twice finds the same one. */
export const partitionWorkflowId = (namespace: string, eventType: string, partition: number) => `stream-${namespace}-${eventType}-p${partition}`;
