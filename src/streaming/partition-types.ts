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

/** What the routing and the registry say a partition's batches go through now. */
export interface PartitionPlan {
  consumers: BatchConsumerPlan[];
  policy: DecisionPolicy;
  /** Most events per batch (the route's batchMax). */
  batchMax: number;
  /** Ranges whose consumers may run at once (the route's maxInFlight); absent in plans recorded before it existed (3). */
  maxInFlight?: number;
  /** Set when the event type has no route any more: its events are dead-lettered with this reason. */
  unrouted?: string;
}

/** Where a partition stands, as its activities report it back to the workflow. */
export interface PartitionProgress {
  /** The last appended offset. */
  head: number;
  /** The last decided offset. */
  committed: number;
  plan: PartitionPlan;
  /** (recover) Ranges after `committed` that a predecessor sent its consumers and never decided. */
  pending?: Array<{ after: number; to: number }>;
}

export interface WatchInput extends PartitionRef {
  /** Answer as soon as the log has an event after this offset (after the route's linger). */
  after: number;
  waitMs: number;
  /** A run started afresh (not continued as new): also report the predecessor's pending ranges. */
  recover?: boolean;
}

/** (legacy claim loop) */
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
  /** Offsets not to score (invalid events, known from a claim: the legacy claim loop). */
  skip?: number[];
  /**
   * Every consumer of the batch: an event whose features fail any of their specs is invalid
   * and scored by none. Each consumer checks them all, so they agree on the invalid events
   * without a separate validation step.
   */
  check?: Array<Pick<BatchConsumerPlan, 'name' | 'model' | 'features'>>;
}

export interface ConsumerBatchResult {
  scored: number;
  /** Events the model could not score, with the reason. */
  failed: Array<{ offset: number; reason: string }>;
  /** Offsets of events that failed some consumer's spec (when `check` was given). */
  invalid?: number[];
}

export type ConsumerBatchOutcome =
  | { consumer: string; required: boolean; status: 'ok'; failed: Array<{ offset: number; reason: string }>; invalid?: number[] }
  | { consumer: string; required: boolean; status: 'missing'; reason: string };

export interface DecideBatchInput extends PartitionRef {
  from: number;
  to: number;
  /** Offsets known to be invalid (the legacy claim loop names them; the range loop leaves it empty). */
  invalid: number[];
  policy: DecisionPolicy;
  outcomes: ConsumerBatchOutcome[];
  /**
   * The range loop: the batch's consumers, to dead-letter (with their reasons) the events the
   * consumers found invalid, or to check the range when no consumer answered.
   */
  consumers?: BatchConsumerPlan[];
  /** The range loop: the event type has no route; every event is dead-lettered with this reason. */
  unrouted?: string;
  /** Local decisions: where the ranges decided together start (their prediction records' ids). */
  starts?: number[];
}

export interface DecideBatchResult {
  decided: number;
  /** Events whose decision went to a callback URL. */
  callbacks: number;
  /** The range loop: the partition's head and plan after this decision. */
  progress?: PartitionProgress;
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

/**
 * The task queue of a partition workflow's own activities (watch, decide, callbacks): beside
 * its main queue, with slots of its own, so an idle partition's watch never holds a batch
 * chunk's slot and a batch run never delays a decision.
 */
export const partitionActivityQueue = (mainQueue: string) => `${mainQueue}-partitions`;
