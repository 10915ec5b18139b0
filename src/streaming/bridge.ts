// The JetStream bridge: consumes events from a JetStream subject and hands them to the event
// ingress: a fan-out workflow start (per-event mode) or an append to the inbound log (batched
// mode). A message is acked only after the ingress accepted it, so a bridge that dies
// mid-stream loses nothing (JetStream redelivers), and the ingress is idempotent by type and
// event id, so a redelivered or re-published event adds nothing: each event is decided once.
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import type { Pool } from '../db/pool.ts';
import { log } from '../log.ts';
import { insertDeadLetter } from './dead-letters.ts';
import { EventError, parseEvent } from './event.ts';
import { ensureJetStream } from './jetstream.ts';
import type { EventIngress } from './ingress.ts';

export interface BridgeOptions {
  natsUrl: string;
  /** JetStream stream holding the events (created for the subject when missing). */
  stream: string;
  subject: string;
  /** Durable consumer name: a restarted bridge resumes where this consumer stopped. */
  durable: string;
  ingress: EventIngress;
  pool: Pool;
  /** Messages handled at once. */
  concurrency?: number;
}

export interface Bridge {
  /** Events started (or found already started) since this bridge began. */
  started(): number;
  stop(): Promise<void>;
  done: Promise<void>;
}

/** A message's event: its JSON body, with the Nats-Msg-Id (or stream sequence) as id when it has none. */
function eventOf(m: JsMsg, streamName: string) {
  let body: unknown;
  try {
    body = m.json();
  } catch {
    throw new EventError('the message is not JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new EventError('the message is not a JSON object');
  const raw = body as Record<string, unknown>;
  const id = raw.id ?? m.headers?.get('Nats-Msg-Id') ?? `${streamName}-${m.seq}`;
  return parseEvent({ ...raw, id });
}

async function deadLetter(pool: Pool, m: JsMsg, streamName: string, reason: string): Promise<void> {
  let payload: unknown = null;
  try {
    payload = m.json();
  } catch {
    payload = { raw: m.string().slice(0, 10_000) };
  }
  const type = typeof (payload as { type?: unknown })?.type === 'string' ? String((payload as { type: string }).type).slice(0, 100) : '(unknown)';
  await insertDeadLetter(pool, { eventType: type, eventId: `${streamName}-${m.seq}`, payload, reason, source: 'bridge' });
}

export async function ensureEventStream(nc: NatsConnection, stream: string, subject: string): Promise<void> {
  await ensureJetStream(await jetstreamManager(nc), { name: stream, subjects: [subject] });
}

export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const nc = await connect({ servers: options.natsUrl, name: 'mldeploy-bridge' });
  await ensureEventStream(nc, options.stream, options.subject);
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(options.stream, {
    durable_name: options.durable,
    ack_policy: AckPolicy.Explicit,
    filter_subject: options.subject,
    ack_wait: nanos(30_000),
    max_ack_pending: 1_000,
  });
  const consumer = await jetstream(nc).consumers.get(options.stream, options.durable);
  const concurrency = options.concurrency ?? 64;
  const messages = await consumer.consume({ max_messages: concurrency * 2 });
  let started = 0;
  const inFlight = new Set<Promise<void>>();

  async function handle(m: JsMsg): Promise<void> {
    let event;
    try {
      event = eventOf(m, options.stream);
    } catch (err) {
      if (!(err instanceof EventError)) throw err;
      await deadLetter(options.pool, m, options.stream, err.message);
      // No reason text: servers before 2.10 ignore a TERM that carries one.
      m.term();
      return;
    }
    try {
      await options.ingress.emit(event);
      started++;
      m.ack();
    } catch (err) {
      if (err instanceof EventError) {
        // Refused by the ingress (a callback host not allowed): final, like a malformed message.
        await deadLetter(options.pool, m, options.stream, err.message);
        m.term();
        return;
      }
      log.warn({ err, eventId: event.id }, 'bridge: the event was not accepted (Temporal or the inbound log); the message will be redelivered');
      m.nak(1_000);
    }
  }

  const done = (async () => {
    for await (const m of messages) {
      if (inFlight.size >= concurrency) await Promise.race(inFlight);
      const work: Promise<void> = handle(m)
        .catch((err) => {
          log.error({ err }, 'bridge: message handling failed; it will be redelivered');
          m.nak(1_000);
        })
        .finally(() => inFlight.delete(work));
      inFlight.add(work);
    }
    await Promise.all(inFlight);
  })();

  return {
    started: () => started,
    done,
    async stop() {
      await messages.close();
      await done;
      await nc.drain();
    },
  };
}
