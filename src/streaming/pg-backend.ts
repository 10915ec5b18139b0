// Streams in PostgreSQL: one table of records, offsets handed out in commit order by
// mldeploy_stream_append (migration 005), wake-ups through LISTEN/NOTIFY.
import { ChannelListener } from '../db/channel.ts';
import type { Pool } from '../db/pool.ts';
import type { AppendResult, StoredRecord, StreamBackend } from './backend.ts';
import type { StreamName } from './types.ts';

const CHANNEL = 'mldeploy_stream';
const MAX_BATCH = 500;

interface PendingAppend {
  id: string;
  value: unknown;
  resolve(result: AppendResult<unknown>): void;
  reject(err: Error): void;
}

interface AppendQueue {
  pending: PendingAppend[];
  flushing: boolean;
}

export class PostgresStreamBackend implements StreamBackend {
  readonly kind = 'postgres';
  /** Wake-ups at commit: the payload is `<stream key>:<offset>`. */
  private readonly channel: ChannelListener;
  private readonly queues = new Map<StreamName, AppendQueue>();

  constructor(
    private readonly pool: Pool,
    /** Keeps the streams of several deployments (or test runs) in one database apart. */
    readonly namespace: string,
  ) {
    this.channel = new ChannelListener(pool, CHANNEL, (payload) => payload.slice(0, payload.lastIndexOf(':')));
  }

  private key(stream: StreamName): string {
    return `${this.namespace}.${stream}`;
  }

  /**
   * Appends wait in a per-stream queue and go to PostgreSQL together, one call at a time:
   * appends to one stream serialise on its offset lock anyway, so batching them is what lets
   * throughput grow with load instead of connections piling up on the lock.
   */
  append<T>(stream: StreamName, id: string, value: T): Promise<AppendResult<T>> {
    return new Promise((resolve, reject) => {
      let queue = this.queues.get(stream);
      if (!queue) this.queues.set(stream, (queue = { pending: [], flushing: false }));
      queue.pending.push({ id, value, resolve: resolve as (r: AppendResult<unknown>) => void, reject });
      if (!queue.flushing) void this.flush(stream, queue);
    });
  }

  private async flush(stream: StreamName, queue: AppendQueue): Promise<void> {
    queue.flushing = true;
    while (queue.pending.length > 0) {
      const batch = queue.pending.splice(0, MAX_BATCH);
      try {
        const { rows } = await this.pool.query('SELECT item, stored_offset, stored_record, created FROM mldeploy_stream_append($1, $2::text[], $3::jsonb[])', [
          this.key(stream),
          batch.map((a) => a.id),
          batch.map((a) => JSON.stringify(a.value)),
        ]);
        for (const row of rows) {
          const append = batch[row.item - 1];
          // The stored record comes back only for ids already in the stream.
          append.resolve({ offset: row.stored_offset, value: row.created ? append.value : row.stored_record, created: row.created });
        }
      } catch (err) {
        for (const a of batch) a.reject(err as Error);
      }
    }
    queue.flushing = false;
  }

  async read<T>(stream: StreamName, after: number, limit: number): Promise<StoredRecord<T>[]> {
    const { rows } = await this.pool.query('SELECT stream_offset, record_id, record FROM stream_records WHERE stream = $1 AND stream_offset > $2 ORDER BY stream_offset LIMIT $3', [
      this.key(stream),
      after,
      limit,
    ]);
    return rows.map((r) => ({ offset: r.stream_offset, id: r.record_id, value: r.record }));
  }

  async find<T>(stream: StreamName, ids: readonly string[]): Promise<Map<string, T>> {
    if (ids.length === 0) return new Map();
    const { rows } = await this.pool.query('SELECT record_id, record FROM stream_records WHERE stream = $1 AND record_id = ANY($2::text[])', [this.key(stream), ids]);
    return new Map(rows.map((r) => [r.record_id as string, r.record as T]));
  }

  async head(stream: StreamName): Promise<number> {
    const { rows } = await this.pool.query('SELECT last_offset FROM stream_heads WHERE stream = $1', [this.key(stream)]);
    return rows[0]?.last_offset ?? 0;
  }

  watch(stream: StreamName, onAppend: () => void): Promise<() => void> {
    return this.channel.subscribe(this.key(stream), onAppend);
  }

  async close(): Promise<void> {
    await this.channel.close();
  }
}
