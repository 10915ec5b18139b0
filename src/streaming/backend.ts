// The stream interface every backend implements: durable ordered logs with increasing
// offsets, idempotent appends keyed by a record id, paged reads and a wake-up signal.
import type { StreamName } from './types.ts';

export interface StoredRecord<T = unknown> {
  offset: number;
  /** Unique within the stream: consumers de-duplicate by it. */
  id: string;
  value: T;
}

export interface AppendResult<T> {
  offset: number;
  /** The stored value: the earlier one when the id was already in the stream. */
  value: T;
  created: boolean;
}

export interface StreamBackend {
  readonly kind: 'postgres' | 'nats';
  /** Keeps the streams of several deployments (or test runs) apart. */
  readonly namespace: string;
  append<T>(stream: StreamName, id: string, value: T): Promise<AppendResult<T>>;
  /** Records with offset > after, in offset order, at most limit of them. */
  read<T = unknown>(stream: StreamName, after: number, limit: number): Promise<StoredRecord<T>[]>;
  /** The records with these ids (the ones that exist), by id. */
  find<T = unknown>(stream: StreamName, ids: readonly string[]): Promise<Map<string, T>>;
  /** Offset of the last record (0 for an empty stream). */
  head(stream: StreamName): Promise<number>;
  /** Calls onAppend (possibly spuriously) after records are appended; returns an unsubscribe. */
  watch(stream: StreamName, onAppend: () => void): Promise<() => void>;
  close(): Promise<void>;
}
