// The inbound event log of batched mode: producers append events, and one workflow per
// (event type, partition) reads them back in offset ranges. This is the PostgreSQL log
// (migration 008); appends from one process are queued and sent together, one call per
// batch, because appends to a partition serialise on its head row anyway.
import { ChannelListener } from '../db/channel.ts';
import type { Pool } from '../db/pool.ts';
import type { StreamEvent } from './types.ts';

const CHANNEL = 'mldeploy_inbound';
const MAX_APPEND_BATCH = 1_000;
/**
 * How long an append call waits for more events once one is queued, while fewer than
 * APPEND_LINGER_UNTIL are. A call costs PostgreSQL about 0.5 ms of CPU plus 0.04 ms per event
 * (docs/benchmarks.md), so at a thousand events a second one call per few milliseconds instead
 * of one per 3-4 events saves a tenth of a core, for a few milliseconds more per acknowledgement.
 */
const APPEND_LINGER_MS = 3;
const APPEND_LINGER_UNTIL = 64;

/** What the log keeps of an event besides its id (the payload travels nowhere else). */
export type StoredEvent = Pick<StreamEvent, 'payload' | 'time' | 'callbackUrl'>;

export interface InboundAppend {
  partition: number;
  offset: number;
  /** False when the event was already in the log (emitted before). */
  created: boolean;
}

export interface InboundRecord<T> {
  offset: number;
  id: string;
  value: T;
}

export interface PartitionHead {
  /** Offset of the last event appended. */
  last: number;
  /** Offset up to which every event has its decision. */
  committed: number;
}

export interface InboundLog {
  /** Appends (idempotently, by type and id) to the given partition. The returned promise settles at commit. */
  append(type: string, partition: number, event: StreamEvent): Promise<InboundAppend>;
  head(type: string, partition: number): Promise<PartitionHead>;
  /** Resolves with the head once it passes `after`, or after timeoutMs with whatever it is. */
  waitForEvents(type: string, partition: number, after: number, timeoutMs: number): Promise<PartitionHead>;
  /** Events with from <= offset <= to: the payload's `field` (the whole payload when undefined). */
  readPayloads(type: string, partition: number, from: number, to: number, field?: string): Promise<InboundRecord<unknown>[]>;
  /** Events with from <= offset <= to, without their payloads. */
  readMeta(type: string, partition: number, from: number, to: number): Promise<InboundRecord<{ time: string; callbackUrl?: string }>[]>;
  /** Records that decisions exist up to `offset` (never moves back); answers the head after it. */
  commit(type: string, partition: number, offset: number): Promise<PartitionHead>;
  /** Partitions that have ever held an event of this type, with their heads. */
  partitions(type: string): Promise<Map<number, PartitionHead>>;
  /** Where an event is, if it is in the log. */
  find(type: string, id: string): Promise<{ partition: number; offset: number } | undefined>;
  close(): Promise<void>;
}

interface PendingAppend {
  id: string;
  partition: number;
  event: string;
  resolve(result: InboundAppend): void;
  reject(err: Error): void;
}

export class PostgresInboundLog implements InboundLog {
  private readonly queues = new Map<string, { pending: PendingAppend[]; flushing: boolean }>();
  /** Wake-ups at commit: the payload is the log key. */
  private readonly channel: ChannelListener;

  constructor(
    private readonly pool: Pool,
    /** Keeps the logs of several deployments (or test runs) in one database apart. */
    readonly namespace: string,
  ) {
    this.channel = new ChannelListener(pool, CHANNEL);
  }

  private log(type: string): string {
    return `${this.namespace}.${type}`;
  }

  append(type: string, partition: number, event: StreamEvent): Promise<InboundAppend> {
    const stored: StoredEvent = { payload: event.payload, time: event.time };
    if (event.callbackUrl) stored.callbackUrl = event.callbackUrl;
    const log = this.log(type);
    return new Promise((resolve, reject) => {
      let queue = this.queues.get(log);
      if (!queue) this.queues.set(log, (queue = { pending: [], flushing: false }));
      queue.pending.push({ id: event.id, partition, event: JSON.stringify(stored), resolve, reject });
      if (!queue.flushing) void this.flush(log, queue);
    });
  }

  private async flush(log: string, queue: { pending: PendingAppend[]; flushing: boolean }): Promise<void> {
    queue.flushing = true;
    while (queue.pending.length > 0) {
      if (queue.pending.length < APPEND_LINGER_UNTIL) await new Promise((resolve) => setTimeout(resolve, APPEND_LINGER_MS));
      const batch = queue.pending.splice(0, MAX_APPEND_BATCH);
      try {
        const { rows } = await this.pool.query('SELECT item, stored_partition, stored_offset, created FROM mldeploy_inbound_append($1, $2::text[], $3::int[], $4::jsonb[])', [
          log,
          batch.map((a) => a.id),
          batch.map((a) => a.partition),
          batch.map((a) => a.event),
        ]);
        for (const row of rows) batch[row.item - 1].resolve({ partition: row.stored_partition, offset: row.stored_offset, created: row.created });
      } catch (err) {
        for (const a of batch) a.reject(err as Error);
      }
    }
    queue.flushing = false;
  }

  async head(type: string, partition: number): Promise<PartitionHead> {
    const { rows } = await this.pool.query('SELECT last_offset, committed_offset FROM inbound_heads WHERE log = $1 AND partition = $2', [this.log(type), partition]);
    return rows[0] ? { last: rows[0].last_offset, committed: rows[0].committed_offset } : { last: 0, committed: 0 };
  }

  async waitForEvents(type: string, partition: number, after: number, timeoutMs: number): Promise<PartitionHead> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // Subscribed before the head is read, so an append between the two still wakes us.
      let wake!: () => void;
      const woken = new Promise<void>((resolve) => (wake = resolve));
      const unsubscribe = await this.channel.subscribe(this.log(type), wake);
      let timer: NodeJS.Timeout | undefined;
      try {
        const head = await this.head(type, partition);
        const left = deadline - Date.now();
        if (head.last > after || left <= 0) return head;
        // A notification can be lost (a reconnect): look again at least every second.
        await Promise.race([woken, new Promise((resolve) => (timer = setTimeout(resolve, Math.min(left, 1_000))))]);
      } finally {
        clearTimeout(timer);
        unsubscribe();
      }
    }
  }

  async readPayloads(type: string, partition: number, from: number, to: number, field?: string): Promise<InboundRecord<unknown>[]> {
    const value = field === undefined ? "event->'payload'" : "event->'payload'->$5";
    const params: unknown[] = [this.log(type), partition, from, to];
    if (field !== undefined) params.push(field);
    const { rows } = await this.pool.query(
      `SELECT event_offset, event_id, ${value} AS value FROM inbound_events
       WHERE log = $1 AND partition = $2 AND event_offset BETWEEN $3 AND $4 ORDER BY event_offset`,
      params,
    );
    return rows.map((r) => ({ offset: r.event_offset, id: r.event_id, value: r.value }));
  }

  async readMeta(type: string, partition: number, from: number, to: number): Promise<InboundRecord<{ time: string; callbackUrl?: string }>[]> {
    const { rows } = await this.pool.query(
      `SELECT event_offset, event_id, event->>'time' AS time, event->>'callbackUrl' AS callback FROM inbound_events
       WHERE log = $1 AND partition = $2 AND event_offset BETWEEN $3 AND $4 ORDER BY event_offset`,
      [this.log(type), partition, from, to],
    );
    return rows.map((r) => ({ offset: r.event_offset, id: r.event_id, value: r.callback ? { time: r.time, callbackUrl: r.callback } : { time: r.time } }));
  }

  async commit(type: string, partition: number, offset: number): Promise<PartitionHead> {
    // One round trip: the update (when it moves the offset forward), else the row as it is.
    const { rows } = await this.pool.query(
      `WITH moved AS (
         UPDATE inbound_heads SET committed_offset = $3, committed_at = now() WHERE log = $1 AND partition = $2 AND committed_offset < $3
         RETURNING last_offset, committed_offset)
       SELECT last_offset, committed_offset FROM moved
       UNION ALL
       SELECT last_offset, committed_offset FROM inbound_heads WHERE log = $1 AND partition = $2 AND NOT EXISTS (SELECT 1 FROM moved)`,
      [this.log(type), partition, offset],
    );
    return rows[0] ? { last: rows[0].last_offset, committed: rows[0].committed_offset } : { last: 0, committed: 0 };
  }

  async partitions(type: string): Promise<Map<number, PartitionHead>> {
    const { rows } = await this.pool.query('SELECT partition, last_offset, committed_offset FROM inbound_heads WHERE log = $1 ORDER BY partition', [this.log(type)]);
    return new Map(rows.map((r) => [r.partition as number, { last: r.last_offset as number, committed: r.committed_offset as number }]));
  }

  async find(type: string, id: string): Promise<{ partition: number; offset: number } | undefined> {
    const { rows } = await this.pool.query('SELECT partition, event_offset FROM inbound_events WHERE log = $1 AND event_id = $2', [this.log(type), id]);
    return rows[0] ? { partition: rows[0].partition, offset: rows[0].event_offset } : undefined;
  }

  async close(): Promise<void> {
    await this.channel.close();
  }
}

/** FNV-1a: a stable hash, so a key maps to the same partition in every process and release. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The partition of an event: by the payload's key field when it has one, else by the event id. */
export function partitionOf(event: Pick<StreamEvent, 'id' | 'payload'>, partitions: number, keyField?: string): number {
  const key = keyField === undefined ? undefined : event.payload[keyField];
  const text = key === undefined || key === null || typeof key === 'object' ? event.id : String(key);
  return fnv1a(text) % partitions;
}
