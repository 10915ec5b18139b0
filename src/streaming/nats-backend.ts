// Streams in NATS JetStream: one JetStream stream per log, the stream sequence is the
// offset, and Nats-Msg-Id de-duplicates appends (within the stream's duplicate window,
// set long here so an activity retried minutes later still finds its record).
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { AppendResult, StoredRecord, StreamBackend } from './backend.ts';
import { ensureJetStream } from './jetstream.ts';
import type { StreamName } from './types.ts';

const DUPLICATE_WINDOW_MS = 24 * 60 * 60 * 1000;

export function natsNames(namespace: string, stream: StreamName) {
  const safe = namespace.replace(/[^A-Za-z0-9_-]/g, '_');
  return { stream: `${safe}_${stream}`, subject: `${safe}.${stream}` };
}

export class NatsStreamBackend implements StreamBackend {
  readonly kind = 'nats';
  private readonly ensured = new Map<StreamName, Promise<void>>();

  private constructor(
    private readonly nc: NatsConnection,
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
      const { stream: name, subject } = this.names(stream);
      ready = ensureJetStream(this.jsm, { name, subjects: [subject], duplicate_window: nanos(DUPLICATE_WINDOW_MS) });
      ready.catch(() => this.ensured.delete(stream));
      this.ensured.set(stream, ready);
    }
    return ready;
  }

  async append<T>(stream: StreamName, id: string, value: T): Promise<AppendResult<T>> {
    await this.ensure(stream);
    const { stream: name, subject } = this.names(stream);
    const ack = await this.js.publish(subject, JSON.stringify(value), { msgID: id });
    if (!ack.duplicate) return { offset: ack.seq, value, created: true };
    const stored = await this.jsm.streams.getMessage(name, { seq: ack.seq });
    return { offset: ack.seq, value: stored ? (stored.json() as T) : value, created: false };
  }

  async head(stream: StreamName): Promise<number> {
    await this.ensure(stream);
    return (await this.jsm.streams.info(this.names(stream).stream)).state.last_seq;
  }

  async find<T>(): Promise<Map<string, T>> {
    // Looking records up by id needs a subject per record, which these streams do not have yet.
    throw new Error("batched fan-out needs MLDEPLOY_STREAM_BACKEND=postgres for now (the JetStream backend cannot look records up by id)");
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
    const sub = this.nc.subscribe(this.names(stream).subject, { callback: () => onAppend() });
    return () => sub.unsubscribe();
  }

  /** Removes this namespace's JetStream streams (tests and benchmarks clean up with it). */
  async destroy(): Promise<void> {
    for (const stream of ['predictions', 'decisions'] as const) await this.jsm.streams.delete(this.names(stream).stream).catch(() => {});
  }

  async close(): Promise<void> {
    await this.nc.drain();
  }
}
