// Streams in NATS JetStream: one JetStream stream per log, the stream sequence is the
// offset. Each record is published on a subject of its own, `<ns>.<stream>.<base64url(id)>`
// (the stream's subjects are `<ns>.<stream>.>` beside the older single `<ns>.<stream>`), so
// `find` looks records up by id with a last-by-subject get. Appends are idempotent by id twice
// over: Nats-Msg-Id de-duplicates within the duplicate window (set long, so an activity retried
// minutes later still finds its record), and the expectation that the record's subject is
// still empty (Nats-Expected-Last-Subject-Sequence: 0) keeps it so after the window.
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { DeliverPolicy, JetStreamApiError, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { AppendResult, StoredRecord, StreamBackend } from './backend.ts';
import { ensureJetStream } from './jetstream.ts';
import { subjectToken } from './nats-inbound-log.ts';
import type { StreamName } from './types.ts';

const DUPLICATE_WINDOW_MS = 24 * 60 * 60 * 1000;
const WRONG_LAST_SEQUENCE = 10071;
/** Lookups by id in flight at once per find() call. */
const FIND_CONCURRENCY = 128;

export function natsNames(namespace: string, stream: StreamName) {
  const safe = namespace.replace(/[^A-Za-z0-9_-]/g, '_');
  const subject = `${safe}.${stream}`;
  return { stream: `${safe}_${stream}`, subject, records: `${subject}.>`, record: (id: string) => `${subject}.${subjectToken(id)}` };
}

export class NatsStreamBackend implements StreamBackend {
  readonly kind = 'nats';
  private readonly ensured = new Map<StreamName, Promise<void>>();

  private constructor(
    /** The backend's connection; the NATS inbound log of the process shares it. */
    readonly connection: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    readonly namespace: string,
  ) {}

  static async connect(servers: string, namespace: string): Promise<NatsStreamBackend> {
    const nc = await connect({ servers, name: 'mldeploy-streams' });
    return new NatsStreamBackend(nc, jetstream(nc), await jetstreamManager(nc), namespace);
  }

  private names(stream: StreamName) {
    return natsNames(this.namespace, stream);
  }

  /** Creates the JetStream stream on first use (no-op when it exists). */
  private ensure(stream: StreamName): Promise<void> {
    let ready = this.ensured.get(stream);
    if (!ready) {
      const { stream: name, subject, records } = this.names(stream);
      ready = (async () => {
        await ensureJetStream(this.jsm, { name, subjects: [subject, records], duplicate_window: nanos(DUPLICATE_WINDOW_MS) });
        // A stream made before records had subjects of their own gets the wildcard added.
        const info = await this.jsm.streams.info(name);
        if (!info.config.subjects?.includes(records)) await this.jsm.streams.update(name, { ...info.config, subjects: [...(info.config.subjects ?? []), records] });
      })();
      ready.catch(() => this.ensured.delete(stream));
      this.ensured.set(stream, ready);
    }
    return ready;
  }

  async append<T>(stream: StreamName, id: string, value: T): Promise<AppendResult<T>> {
    await this.ensure(stream);
    const { stream: name, record } = this.names(stream);
    try {
      const ack = await this.js.publish(record(id), JSON.stringify(value), { msgID: id, expect: { lastSubjectSequence: 0 } });
      if (!ack.duplicate) return { offset: ack.seq, value, created: true };
      const stored = await this.jsm.streams.getMessage(name, { seq: ack.seq });
      return { offset: ack.seq, value: stored ? (stored.json() as T) : value, created: false };
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE)) throw err;
      // The record's subject holds it already (appended before the duplicate window).
      const stored = await this.jsm.streams.getMessage(name, { last_by_subj: record(id) });
      if (!stored) throw err;
      return { offset: stored.seq, value: stored.json() as T, created: false };
    }
  }

  async head(stream: StreamName): Promise<number> {
    await this.ensure(stream);
    return (await this.jsm.streams.info(this.names(stream).stream)).state.last_seq;
  }

  /**
   * Records by id: one last-by-subject get per id, at most FIND_CONCURRENCY in flight. Records
   * appended on the old single subject (before records had subjects of their own) are not found.
   */
  async find<T>(stream: StreamName, ids: readonly string[]): Promise<Map<string, T>> {
    const found = new Map<string, T>();
    if (ids.length === 0) return found;
    await this.ensure(stream);
    const { stream: name, record } = this.names(stream);
    const unique = [...new Set(ids)];
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(FIND_CONCURRENCY, unique.length) }, async () => {
        while (next < unique.length) {
          const id = unique[next++];
          const stored = await this.jsm.streams.getMessage(name, { last_by_subj: record(id) });
          if (stored) found.set(id, stored.json() as T);
        }
      }),
    );
    return found;
  }

  async read<T>(stream: StreamName, after: number, limit: number): Promise<StoredRecord<T>[]> {
    await this.ensure(stream);
    const { stream: name } = this.names(stream);
    const info = await this.jsm.streams.info(name);
    const available = Math.min(limit, info.state.last_seq - after);
    if (available <= 0) return [];
    const consumer = await this.js.consumers.get(name, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 });
    const records: StoredRecord<T>[] = [];
    const messages = await consumer.fetch({ max_messages: available, expires: 2_000 });
    for await (const m of messages) {
      records.push({ offset: m.seq, id: m.headers?.get('Nats-Msg-Id') ?? String(m.seq), value: m.json() as T });
      if (records.length >= available) break;
    }
    await consumer.delete().catch(() => {});
    return records;
  }

  async watch(stream: StreamName, onAppend: () => void): Promise<() => void> {
    await this.ensure(stream);
    // Records arrive on their own subjects; the single subject is watched too, for older writers.
    const { subject, records } = this.names(stream);
    const subs = [subject, records].map((s) => this.connection.subscribe(s, { callback: () => onAppend() }));
    return () => {
      for (const sub of subs) sub.unsubscribe();
    };
  }

  /** Removes this namespace's JetStream streams (tests and benchmarks clean up with it). */
  async destroy(): Promise<void> {
    for (const stream of ['predictions', 'decisions'] as const) await this.jsm.streams.delete(this.names(stream).stream).catch(() => {});
  }

  async close(): Promise<void> {
    await this.connection.drain();
  }
}
