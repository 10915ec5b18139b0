// The inbound event log of batched mode on NATS JetStream (MLDEPLOY_STREAM_BACKEND=nats).
//
// - One JetStream stream per (namespace, event type, partition): `<ns>_in_<type>_<p>`, subjects
//   `<ns>.in.<type>.<p>.>`. The stream sequence is the partition's offset, so offsets are dense
//   and increasing, and a reader of (after, head] sees every record.
// - Each event is published on a subject of its own, `<ns>.in.<type>.<p>.<base64url(id)>`, with
//   the expectation that the subject holds no message yet (Nats-Expected-Last-Subject-Sequence: 0)
//   and Nats-Msg-Id = the event id. The expectation makes the append idempotent by (type, id)
//   for as long as the stream keeps its records, not only within a duplicate window (which is
//   kept short: it only covers a publish retried after a lost acknowledgement). An event always
//   maps to the same partition for the same key and P, so that is idempotency by (type, id).
//   If P changes, a re-sent event may hash to another partition, where the log does not find it:
//   it is stored again, and the decision and prediction streams' record ids keep it to one
//   decision (within their own de-duplication).
// - Committed offsets live in one stream per namespace, `<ns>_inbound_commits`, one subject per
//   (type, partition) with max-msgs-per-subject 1 (what a KV bucket is), updated with an
//   expected last subject sequence so the offset never moves back.
// - waitForEvents: a core subscription on the partition's subjects wakes waiters; the head is
//   polled at least every second in case a wake-up is lost (a reconnect).
import { connect, nanos, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { DeliverPolicy, JetStreamApiError, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { InboundAppend, InboundLog, InboundRecord, PartitionHead, StoredEvent } from './inbound-log.ts';
import { ensureJetStream } from './jetstream.ts';
import type { StreamEvent } from './types.ts';

const STREAM_NOT_FOUND = 10059;
const WRONG_LAST_SEQUENCE = 10071;
/** Covers a publish retried after a lost ack; lasting idempotency comes from the per-event subject. */
const DUPLICATE_WINDOW_MS = 2 * 60 * 1000;
const FETCH_EXPIRES_MS = 5_000;

/** A subject token for any event id (ids may hold '.', which separates subject tokens). */
export function subjectToken(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

function fromSubjectToken(token: string): string {
  return Buffer.from(token, 'base64url').toString('utf8');
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

interface Api {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

export class NatsInboundLog implements InboundLog {
  private readonly safe: string;
  private api?: Promise<Api>;
  private readonly ensured = new Map<string, Promise<void>>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly subscriptions = new Map<string, Subscription>();
  private closed = false;

  /**
   * @param connection the NATS connection to use (the process's stream backend's, so one
   *   connection serves both); opened on first use.
   * @param owned whether close() drains that connection (true for a connection of its own).
   */
  constructor(
    private readonly connection: () => Promise<NatsConnection>,
    /** Keeps the logs of several deployments (or test runs) apart. */
    readonly namespace: string,
    private readonly owned = false,
  ) {
    this.safe = namespace.replace(/[^A-Za-z0-9_-]/g, '_');
  }

  /** A log on a NATS connection of its own, drained on close(). */
  static connect(servers: string, namespace: string): NatsInboundLog {
    let nc: Promise<NatsConnection> | undefined;
    return new NatsInboundLog(() => (nc ??= connect({ servers, name: 'mldeploy-inbound' })), namespace, true);
  }

  private open(): Promise<Api> {
    if (this.closed) return Promise.reject(new Error('the inbound log is closed'));
    this.api ??= (async () => {
      const nc = await this.connection();
      return { nc, js: jetstream(nc), jsm: await jetstreamManager(nc) };
    })();
    this.api.catch(() => (this.api = undefined));
    return this.api;
  }

  /** JetStream names of a partition. Event types are `[a-z][a-z0-9_-]*`: safe in names and subjects. */
  private names(type: string, partition: number) {
    const subject = `${this.safe}.in.${type}.${partition}`;
    return { stream: `${this.safe}_in_${type}_${partition}`, subject, all: `${subject}.>` };
  }

  private commits() {
    return { stream: `${this.safe}_inbound_commits`, subject: (type: string, partition: number) => `${this.safe}.inbound_commit.${type}.${partition}` };
  }

  private ensure(key: string, create: (jsm: JetStreamManager) => Promise<void>): Promise<void> {
    let ready = this.ensured.get(key);
    if (!ready) {
      ready = this.open().then(({ jsm }) => create(jsm));
      ready.catch(() => this.ensured.delete(key));
      this.ensured.set(key, ready);
    }
    return ready;
  }

  private ensurePartition(type: string, partition: number): Promise<void> {
    const { stream, all } = this.names(type, partition);
    return this.ensure(stream, (jsm) => ensureJetStream(jsm, { name: stream, subjects: [all], duplicate_window: nanos(DUPLICATE_WINDOW_MS) }));
  }

  private ensureCommits(): Promise<void> {
    const { stream } = this.commits();
    return this.ensure(stream, (jsm) => ensureJetStream(jsm, { name: stream, subjects: [`${this.safe}.inbound_commit.>`], max_msgs_per_subject: 1 }));
  }

  async append(type: string, partition: number, event: StreamEvent): Promise<InboundAppend> {
    const stored: StoredEvent = { payload: event.payload, time: event.time };
    if (event.callbackUrl) stored.callbackUrl = event.callbackUrl;
    await this.ensurePartition(type, partition);
    const { js, jsm } = await this.open();
    const { stream, subject } = this.names(type, partition);
    const eventSubject = `${subject}.${subjectToken(event.id)}`;
    try {
      const ack = await js.publish(eventSubject, JSON.stringify(stored), { msgID: event.id, expect: { lastSubjectSequence: 0 } });
      return { partition, offset: ack.seq, created: !ack.duplicate };
    } catch (err) {
      if (!isApiError(err, WRONG_LAST_SEQUENCE)) throw err;
      // The event's subject already holds it: appended before.
      const existing = await jsm.streams.getMessage(stream, { last_by_subj: eventSubject });
      if (!existing) throw err;
      return { partition, offset: existing.seq, created: false };
    }
  }

  private async last(jsm: JetStreamManager, type: string, partition: number): Promise<number> {
    try {
      return (await jsm.streams.info(this.names(type, partition).stream)).state.last_seq;
    } catch (err) {
      if (isApiError(err, STREAM_NOT_FOUND)) return 0;
      throw err;
    }
  }

  private async committed(jsm: JetStreamManager, type: string, partition: number): Promise<{ offset: number; seq: number }> {
    const { stream, subject } = this.commits();
    try {
      const msg = await jsm.streams.getMessage(stream, { last_by_subj: subject(type, partition) });
      return msg ? { offset: Number(msg.string()), seq: msg.seq } : { offset: 0, seq: 0 };
    } catch (err) {
      if (isApiError(err, STREAM_NOT_FOUND)) return { offset: 0, seq: 0 };
      throw err;
    }
  }

  async head(type: string, partition: number): Promise<PartitionHead> {
    const { jsm } = await this.open();
    const [last, committed] = await Promise.all([this.last(jsm, type, partition), this.committed(jsm, type, partition)]);
    return { last, committed: committed.offset };
  }

  async waitForEvents(type: string, partition: number, after: number, timeoutMs: number): Promise<PartitionHead> {
    const key = await this.subscribe(type, partition);
    let set = this.waiters.get(key);
    if (!set) this.waiters.set(key, (set = new Set()));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // Registered before the head is read, so an append between the two still wakes us.
      let wake!: () => void;
      const woken = new Promise<void>((resolve) => (wake = resolve));
      set.add(wake);
      let timer: NodeJS.Timeout | undefined;
      try {
        const head = await this.head(type, partition);
        const left = deadline - Date.now();
        if (head.last > after || left <= 0 || this.closed) return head;
        // A wake-up can be lost (a reconnect): look again at least every second.
        await Promise.race([woken, new Promise((resolve) => (timer = setTimeout(resolve, Math.min(left, 1_000))))]);
      } finally {
        clearTimeout(timer);
        set.delete(wake);
      }
    }
  }

  /** One core subscription per partition waited on, kept until close. */
  private async subscribe(type: string, partition: number): Promise<string> {
    const { nc } = await this.open();
    const { all } = this.names(type, partition);
    if (!this.subscriptions.has(all)) {
      this.subscriptions.set(
        all,
        nc.subscribe(all, {
          callback: () => {
            for (const wake of this.waiters.get(all) ?? []) wake();
          },
        }),
      );
    }
    return all;
  }

  /** The stored events with from <= offset <= to, in offset order. */
  private async read(type: string, partition: number, from: number, to: number): Promise<Array<{ offset: number; id: string; event: StoredEvent }>> {
    const { js, jsm } = await this.open();
    const { stream, subject } = this.names(type, partition);
    const last = Math.min(to, await this.last(jsm, type, partition));
    const first = Math.max(from, 1);
    if (last < first) return [];
    const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: first });
    const prefix = `${subject}.`;
    const records: Array<{ offset: number; id: string; event: StoredEvent }> = [];
    try {
      // Offsets are dense: the range holds last - first + 1 records. Fetch again if a pull
      // comes back short (its expiry), until the last one is in.
      while (records.length === 0 || records[records.length - 1].offset < last) {
        const before = records.length;
        const messages = await consumer.fetch({ max_messages: last - first + 1 - records.length, expires: FETCH_EXPIRES_MS });
        for await (const m of messages) {
          if (m.seq > last) break;
          const id = m.subject.startsWith(prefix) ? fromSubjectToken(m.subject.slice(prefix.length)) : (m.headers?.get('Nats-Msg-Id') ?? String(m.seq));
          records.push({ offset: m.seq, id, event: m.json() as StoredEvent });
          if (m.seq >= last) break;
        }
        if (records.length === before) throw new Error(`reading ${stream} from offset ${first} to ${last}: no records came back`);
      }
    } finally {
      await consumer.delete().catch(() => {});
    }
    return records;
  }

  async readPayloads(type: string, partition: number, from: number, to: number, field?: string): Promise<InboundRecord<unknown>[]> {
    const records = await this.read(type, partition, from, to);
    return records.map((r) => ({ offset: r.offset, id: r.id, value: field === undefined ? r.event.payload : (r.event.payload?.[field] ?? null) }));
  }

  async readMeta(type: string, partition: number, from: number, to: number): Promise<InboundRecord<{ time: string; callbackUrl?: string }>[]> {
    const records = await this.read(type, partition, from, to);
    return records.map((r) => ({ offset: r.offset, id: r.id, value: r.event.callbackUrl ? { time: r.event.time, callbackUrl: r.event.callbackUrl } : { time: r.event.time } }));
  }

  async commit(type: string, partition: number, offset: number): Promise<PartitionHead> {
    await this.ensureCommits();
    const { js, jsm } = await this.open();
    const subject = this.commits().subject(type, partition);
    for (;;) {
      const current = await this.committed(jsm, type, partition);
      if (current.offset >= offset) return this.head(type, partition);
      try {
        await js.publish(subject, String(offset), { expect: { lastSubjectSequence: current.seq } });
        return this.head(type, partition);
      } catch (err) {
        // Another commit came in between: read it and compare again.
        if (!isApiError(err, WRONG_LAST_SEQUENCE)) throw err;
      }
    }
  }

  /** The partitions of a type that have a stream, by listing streams whose subjects match the type's. */
  private async partitionNumbers(type: string): Promise<number[]> {
    const { jsm } = await this.open();
    const pattern = new RegExp(`^${this.safe.replace(/[-]/g, '\\-')}_in_${type.replace(/[-]/g, '\\-')}_(\\d+)$`);
    const found: number[] = [];
    for await (const name of jsm.streams.names(`${this.safe}.in.${type}.>`)) {
      const match = pattern.exec(name);
      if (match) found.push(Number(match[1]));
    }
    return found.sort((a, b) => a - b);
  }

  async partitions(type: string): Promise<Map<number, PartitionHead>> {
    const numbers = await this.partitionNumbers(type);
    const heads = await Promise.all(numbers.map((p) => this.head(type, p)));
    return new Map(numbers.map((p, i) => [p, heads[i]]));
  }

  async find(type: string, id: string): Promise<{ partition: number; offset: number } | undefined> {
    const { jsm } = await this.open();
    const numbers = await this.partitionNumbers(type);
    const found = await Promise.all(
      numbers.map(async (partition) => {
        const { stream, subject } = this.names(type, partition);
        const msg = await jsm.streams.getMessage(stream, { last_by_subj: `${subject}.${subjectToken(id)}` }).catch((err) => {
          if (isApiError(err, STREAM_NOT_FOUND)) return null;
          throw err;
        });
        return msg ? { partition, offset: msg.seq } : undefined;
      }),
    );
    // After a change of P the id can be in two partitions: the first one stored counts.
    return found.find((f) => f !== undefined);
  }

  /** Removes this namespace's inbound streams and committed offsets (tests and benchmarks clean up with it). */
  async destroy(): Promise<void> {
    const { jsm } = await this.open();
    const names: string[] = [];
    for await (const name of jsm.streams.names(`${this.safe}.in.>`)) if (name.startsWith(`${this.safe}_in_`)) names.push(name);
    names.push(this.commits().stream);
    for (const name of names) await jsm.streams.delete(name).catch(() => {});
    this.ensured.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const set of this.waiters.values()) for (const wake of set) wake();
    this.waiters.clear();
    for (const sub of this.subscriptions.values()) {
      try {
        sub.unsubscribe();
      } catch {
        // The connection is closed already.
      }
    }
    this.subscriptions.clear();
    const api = this.api;
    this.api = undefined;
    if (this.owned && api) {
      const opened = await api.catch(() => undefined);
      if (opened && !opened.nc.isClosed()) await opened.nc.drain();
    }
  }
}
