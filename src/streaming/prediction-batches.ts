// Batched mode's prediction records: one record per consumer per offset range of a partition,
// holding the predictions of every event of the range that consumer scored, instead of one
// record per event and consumer (a KPL-style aggregated record). Rows per event were what
// bounded PostgreSQL at stream rates: this takes three of an event's five rows away.
//
// The record id is the range's start: `<type>/<partition>/<from>:<consumer>` ('/' never
// occurs in an event id, so it cannot meet a per-event record's id). A range is fixed once the
// partition workflow dispatched it (it is in its history), so a retried consumer finds its own
// record. A partition workflow started afresh (after a terminate) first finds the ranges its
// predecessor left uncommitted by walking this chain from the committed offset, and sends
// those again as they were (pendingRanges), so ranges never overlap.
import type { StreamBackend } from './backend.ts';
import type { PartitionRef } from './partition-types.ts';
import { predictionRecordId, type ModelId, type PredictionRecord } from './types.ts';

export interface PredictionBatchRecord {
  id: string;
  eventType: string;
  partition: number;
  /** The range (from, to are offsets of the inbound log, both included). */
  from: number;
  to: number;
  consumer: string;
  model: ModelId;
  time: string;
  /** The scored events, in offset order: parallel arrays. */
  offsets: number[];
  eventIds: string[];
  predictions: number[];
  /** Classifiers: the class labels once, and per scored event its label and class probabilities (in the classes' order). */
  classes?: Array<string | number>;
  labels?: Array<string | number>;
  probabilities?: number[][];
}

/** A classifier's answer for one event. */
export interface Classification {
  label: string | number;
  /** Keyed by class label. */
  probabilities: Record<string, number>;
}

export const predictionBatchId = (eventType: string, partition: number, from: number, consumer: string) => `${eventType}/${partition}/${from}:${consumer}`;

export const isPredictionBatch = (record: unknown): record is PredictionBatchRecord => Array.isArray((record as PredictionBatchRecord | null)?.offsets);

/** A record of the predictions stream as one entry per event and consumer, whichever its form. */
export function perEvent(record: PredictionRecord | PredictionBatchRecord): PredictionRecord[] {
  if (!isPredictionBatch(record)) return [record];
  return record.eventIds.map((eventId, i) => ({
    id: predictionRecordId(record.eventType, eventId, record.consumer),
    eventId,
    eventType: record.eventType,
    consumer: record.consumer,
    model: record.model,
    prediction: record.predictions[i],
    ...classificationOf(record, i),
    time: record.time,
  }));
}

/** Entry i's label and probabilities, when the record is a classifier's. */
function classificationOf(record: PredictionBatchRecord, i: number): Partial<Classification> {
  const { classes, labels, probabilities } = record;
  if (!classes || !labels || !probabilities) return {};
  return { label: labels[i], probabilities: Object.fromEntries(classes.map((c, k) => [String(c), probabilities[i][k]])) };
}

/**
 * The consumers' batch records of a partition from `from` on, following each chain of ranges
 * (a record's next range starts after its `to`) while records are found, and no further than
 * `upTo` when given. Returns them by consumer, in offset order.
 */
export async function findBatchChain(
  backend: StreamBackend,
  ref: PartitionRef,
  consumers: readonly string[],
  from: number,
  upTo = Number.POSITIVE_INFINITY,
  /** Where the chain's records are expected to start (the ranges as sent): looked up in one call. */
  starts: readonly number[] = [],
): Promise<Map<string, PredictionBatchRecord[]>> {
  const chains = new Map<string, PredictionBatchRecord[]>(consumers.map((c) => [c, []]));
  const found = new Map<string, PredictionBatchRecord>();
  const asked = new Set<string>();
  const lookUp = async (ids: string[]) => {
    const fresh = ids.filter((id) => !asked.has(id));
    if (fresh.length === 0) return;
    for (const id of fresh) asked.add(id);
    for (const [id, record] of await backend.find<PredictionBatchRecord>('predictions', fresh)) found.set(id, record);
  };
  await lookUp(starts.flatMap((start) => consumers.map((c) => predictionBatchId(ref.eventType, ref.partition, start, c))));
  let next = new Map<string, number>(consumers.map((c) => [c, from]));
  while (next.size > 0) {
    await lookUp([...next].map(([consumer, start]) => predictionBatchId(ref.eventType, ref.partition, start, consumer)));
    const following = new Map<string, number>();
    for (const [consumer, start] of next) {
      const record = found.get(predictionBatchId(ref.eventType, ref.partition, start, consumer));
      if (!record) continue;
      chains.get(consumer)!.push(record);
      if (record.to < upTo) following.set(consumer, record.to + 1);
    }
    next = following;
  }
  return chains;
}

/**
 * The ranges a partition's consumers recorded after `committed` and nobody decided: the
 * longest chain among the consumers (they all received the same ranges), as (after, to].
 */
export async function pendingRanges(backend: StreamBackend, ref: PartitionRef, consumers: readonly string[], committed: number): Promise<Array<{ after: number; to: number }>> {
  const chains = await findBatchChain(backend, ref, consumers, committed + 1);
  const longest = [...chains.values()].reduce<PredictionBatchRecord[]>((a, b) => (b.length > a.length ? b : a), []);
  return longest.map((r) => ({ after: r.from - 1, to: r.to }));
}

/**
 * Appends a consumer's predictions of a range as one record (an empty one too, so the chain
 * has no gaps) and returns how many predictions were new. A record already at the range's
 * start is a retry's, and is kept; if it ends before this range does (a range cut otherwise by
 * an earlier run), the rest of the range goes into a record of its own.
 */
export async function appendBatchRecord(
  backend: StreamBackend,
  range: PartitionRef & { from: number; to: number; consumer: string },
  model: ModelId,
  scored: ReadonlyArray<{ offset: number; id: string; prediction: number; classification?: Classification }>,
): Promise<number> {
  const time = new Date().toISOString();
  let from = range.from;
  let rest = scored;
  for (;;) {
    const id = predictionBatchId(range.eventType, range.partition, from, range.consumer);
    const record: PredictionBatchRecord = {
      id,
      eventType: range.eventType,
      partition: range.partition,
      from,
      to: range.to,
      consumer: range.consumer,
      model,
      time,
      offsets: rest.map((s) => s.offset),
      eventIds: rest.map((s) => s.id),
      predictions: rest.map((s) => s.prediction),
      ...classified(rest),
    };
    const stored = await backend.append('predictions', id, record);
    if (stored.created) return rest.length;
    const end = stored.value.to;
    if (end >= range.to) return 0;
    from = end + 1;
    rest = rest.filter((s) => s.offset >= from);
  }
}

/** The classes, labels and probabilities columns of a batch record (none for a regression model). */
function classified(scored: ReadonlyArray<{ classification?: Classification }>): Pick<PredictionBatchRecord, 'classes' | 'labels' | 'probabilities'> {
  const first = scored.find((s) => s.classification)?.classification;
  if (!first) return {};
  const classes = Object.keys(first.probabilities);
  return {
    classes,
    labels: scored.map((s) => s.classification!.label),
    probabilities: scored.map((s) => classes.map((c) => s.classification!.probabilities[c])),
  };
}

export interface StoredPrediction extends Partial<Classification> {
  prediction: number;
  model: ModelId;
  time: string;
}

/**
 * Each consumer's stored predictions of a range's events, by offset. Consumers that have no
 * batch record there were run by code older than batch records (or scored nothing): their
 * per-event records are looked up instead.
 */
export async function rangePredictions(
  backend: StreamBackend,
  ref: PartitionRef & { from: number; to: number; starts?: number[] },
  consumers: readonly string[],
  /** The range's events: only read for consumers whose predictions are per-event records (written before range records). */
  rangeEvents: Promise<ReadonlyArray<{ offset: number; id: string }>>,
): Promise<Map<string, Map<number, StoredPrediction>>> {
  const result = new Map<string, Map<number, StoredPrediction>>(consumers.map((c) => [c, new Map()]));
  const chains = await findBatchChain(backend, ref, consumers, ref.from, ref.to, ref.starts);
  const older: string[] = [];
  for (const [consumer, chain] of chains) {
    if (chain.length === 0) older.push(consumer);
    for (const r of chain)
      r.offsets.forEach((offset, i) => result.get(consumer)!.set(offset, { prediction: r.predictions[i], model: r.model, time: r.time, ...classificationOf(r, i) }));
  }
  const events = older.length > 0 ? await rangeEvents : [];
  if (events.length > 0) {
    const found = await backend.find<PredictionRecord>(
      'predictions',
      older.flatMap((c) => events.map((e) => predictionRecordId(ref.eventType, e.id, c))),
    );
    for (const consumer of older) {
      for (const e of events) {
        const record = found.get(predictionRecordId(ref.eventType, e.id, consumer));
        if (record) result.get(consumer)!.set(e.offset, { ...record });
      }
    }
  }
  return result;
}
