// A durable subscriber: follows a stream and keeps its offset in PostgreSQL, so a restart
// resumes where it stopped. Delivery is at least once (the offset is stored after the
// handler returns), and every record carries an id for de-duplication.
import type { Pool } from '../db/pool.ts';
import type { StoredRecord, StreamBackend } from './backend.ts';
import { followStream } from './follow.ts';
import type { StreamName } from './types.ts';

export interface SubscriberOptions<T> {
  pool: Pool;
  backend: StreamBackend;
  stream: StreamName;
  /** Names the stored offset: one per logical subscriber. */
  name: string;
  handle(records: StoredRecord<T>[]): Promise<void>;
  pageSize?: number;
}

/** Offsets are kept per backend and namespace: an offset means nothing in another log. */
const streamKey = (backend: StreamBackend, stream: StreamName) => `${backend.kind}:${backend.namespace}.${stream}`;

export async function storedOffset(pool: Pool, backend: StreamBackend, name: string, stream: StreamName): Promise<number> {
  const { rows } = await pool.query('SELECT stream_offset FROM stream_subscriptions WHERE subscriber = $1 AND stream = $2', [name, streamKey(backend, stream)]);
  return rows[0]?.stream_offset ?? 0;
}

async function storeOffset(pool: Pool, backend: StreamBackend, name: string, stream: StreamName, offset: number): Promise<void> {
  await pool.query(
    `INSERT INTO stream_subscriptions (subscriber, stream, stream_offset) VALUES ($1, $2, $3)
     ON CONFLICT (subscriber, stream) DO UPDATE SET stream_offset = GREATEST(stream_subscriptions.stream_offset, EXCLUDED.stream_offset), updated_at = now()`,
    [name, streamKey(backend, stream), offset],
  );
}

export interface Subscription {
  /** Resolves when the subscription stops (after stop(), or with the handler's error). */
  done: Promise<void>;
  stop(): Promise<void>;
}

export function subscribe<T>(options: SubscriberOptions<T>): Subscription {
  const abort = new AbortController();
  const done = (async () => {
    const after = await storedOffset(options.pool, options.backend, options.name, options.stream);
    await followStream(options.backend, options.stream, {
      after,
      pageSize: options.pageSize,
      signal: abort.signal,
      onPage: async (records) => {
        await options.handle(records as StoredRecord<T>[]);
        await storeOffset(options.pool, options.backend, options.name, options.stream, records[records.length - 1].offset);
      },
    });
  })();
  return {
    done,
    async stop() {
      abort.abort();
      await done.catch(() => {});
    },
  };
}
