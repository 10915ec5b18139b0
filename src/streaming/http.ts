// The streaming HTTP routes, as a fastify plugin the web service registers:
//   POST /v1/events[?wait=true]          emit an event (a workflow start, or an append to the
//                                        inbound log in batched mode); with wait, answer with its decision
//   GET  /v1/streams/{predictions|decisions}?after=<offset>&limit=<n>
//        JSON pages, or Server-Sent Events with `Accept: text/event-stream` (resumes from
//        `after` or the Last-Event-ID header; every event's id is its offset).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { StreamBackend } from './backend.ts';
import { EventError } from './event.ts';
import { IngressUnavailableError, type EventIngress } from './ingress.ts';
import { followStream } from './follow.ts';
import { STREAM_NAMES, type StreamName } from './types.ts';

export interface StreamingRouteDeps {
  /** Where events go: a workflow start (per-event mode) or the inbound log (batched mode). */
  ingress: EventIngress;
  backend: StreamBackend;
}

const MAX_PAGE = 1_000;

function nonNegativeInt(name: string, value: unknown, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new EventError(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

function wantsWait(value: unknown): boolean {
  if (value === undefined || value === 'false' || value === '0') return false;
  if (value === '' || value === 'true' || value === '1') return true;
  throw new EventError(`wait must be true or false, got ${JSON.stringify(value)}`);
}

async function sendEvents(request: FastifyRequest, reply: FastifyReply, backend: StreamBackend, stream: StreamName, after: number, open: Set<AbortController>): Promise<void> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  raw.write(': following ' + stream + '\n\n');
  const abort = new AbortController();
  // The response closes when the client goes away (or the server shuts down).
  raw.once('close', () => abort.abort());
  open.add(abort);
  try {
    await followStream(backend, stream, {
      after,
      signal: abort.signal,
      idleMs: 15_000,
      onIdle: () => raw.write(': keep-alive\n\n'),
      onPage: async (records) => {
        for (const r of records) raw.write(`id: ${r.offset}\nevent: ${stream}\ndata: ${JSON.stringify(r)}\n\n`);
      },
    });
  } catch (err) {
    request.log.warn({ err }, 'stream follow ended with an error');
  } finally {
    open.delete(abort);
    raw.end();
  }
}

export async function streamingRoutes(app: FastifyInstance, deps: StreamingRouteDeps): Promise<void> {
  // Open SSE responses never end by themselves: end them before the server closes, or
  // closing would wait for every subscriber to hang up.
  const open = new Set<AbortController>();
  app.addHook('preClose', async () => {
    for (const abort of open) abort.abort();
  });

  app.post('/v1/events', async (request, reply) => {
    try {
      const wait = wantsWait((request.query as Record<string, unknown>).wait);
      const result = await deps.ingress.emit(request.body as never, { wait });
      return reply.code(result.status === 'done' ? 200 : 202).send(result);
    } catch (err) {
      if (err instanceof EventError) return reply.code(400).send({ error: err.message });
      // Only when the inbound log itself cannot take writes; consumers falling behind only add lag.
      if (err instanceof IngressUnavailableError) return reply.code(503).send({ error: err.message });
      throw err;
    }
  });

  app.get('/v1/streams/:name', async (request, reply) => {
    const { name } = request.params as { name: string };
    if (!(STREAM_NAMES as readonly string[]).includes(name)) return reply.code(404).send({ error: `no stream named '${name}' (streams: ${STREAM_NAMES.join(', ')})` });
    const stream = name as StreamName;
    const query = request.query as Record<string, unknown>;
    let after: number;
    let limit: number;
    try {
      after = nonNegativeInt('after', query.after ?? request.headers['last-event-id'], 0);
      limit = Math.min(nonNegativeInt('limit', query.limit, 100), MAX_PAGE);
      if (limit === 0) throw new EventError('limit must be at least 1');
    } catch (err) {
      return reply.code(400).send({ error: (err as Error).message });
    }
    if (request.headers.accept?.includes('text/event-stream')) return sendEvents(request, reply, deps.backend, stream, after, open);
    const records = await deps.backend.read(stream, after, limit);
    return { stream, records, next: records.at(-1)?.offset ?? after };
  });
}
