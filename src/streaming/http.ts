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

// The OpenAPI description of what the handlers below accept and answer. The handlers check
// requests themselves (their messages name the field), so these schemas document, not validate.
const documentOnly = () => () => true;
// Inline, not the service's shared 'Error' schema: these routes also run on servers without it.
const error = { type: 'object', required: ['error'], properties: { error: { type: 'string' } } } as const;
const NO_NUL = { type: 'string', pattern: '^[^\\u0000]*$' } as const;
/** Any JSON value PostgreSQL's jsonb can store: no NUL character in a string or key. */
export const StorableJsonSchema = {
  $id: 'StorableJson',
  anyOf: [
    NO_NUL,
    { type: ['number', 'boolean', 'null'] },
    { type: 'array', items: { $ref: 'StorableJson#' } },
    { type: 'object', propertyNames: NO_NUL, additionalProperties: { $ref: 'StorableJson#' } },
  ],
} as const;
const EVENT_BODY = {
  type: 'object',
  required: ['type', 'payload'],
  additionalProperties: false,
  properties: {
    id: {
      description: 'default: a new UUID; the same id is processed once',
      anyOf: [
        { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
        { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
      ],
    },
    type: { type: 'string', pattern: '^[a-z][a-z0-9_-]{0,62}$', examples: ['ride_started'] },
    payload: {
      type: 'object',
      description: 'a JSON object of at most 64 KiB; no text in it (keys or strings, at any depth) may hold a NUL character, which PostgreSQL cannot store',
      propertyNames: NO_NUL,
      additionalProperties: { $ref: 'StorableJson#' },
    },
    time: { type: 'string', format: 'date-time' },
    callbackUrl: {
      type: 'string',
      format: 'uri',
      pattern: '^https?://[^\\s/?#@:]+(:[0-9]{1,4})?([/?#][^\\s]*)?$',
      description: 'POSTed the decision once it exists; its host must be in MLDEPLOY_CALLBACK_HOSTS',
    },
  },
  examples: [{ type: 'ride_started', payload: { ride_id: 'r-1', ride: { PULocationID: 130, DOLocationID: 205, trip_distance: 3.66 } } }],
} as const;
const EMIT_RESULT = {
  type: 'object',
  required: ['status', 'eventId', 'type'],
  properties: {
    status: { type: 'string', enum: ['accepted', 'pending', 'done'] },
    eventId: { type: 'string' },
    type: { type: 'string' },
    workflowId: { type: 'string' },
    waitedMs: { type: 'number' },
    decision: { type: 'object', additionalProperties: true },
    partition: { type: 'integer' },
    offset: { type: 'integer' },
  },
} as const;
/** Offsets and page sizes are safe integers: 15 digits at most after any leading zeros. */
const OFFSET = '^(0*[0-9]{1,15})?$';
const PAGE = '^(0*[1-9][0-9]{0,14})?$';

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
  app.addSchema(StorableJsonSchema);
  app.addHook('preClose', async () => {
    for (const abort of open) abort.abort();
  });

  app.post(
    '/v1/events',
    {
      validatorCompiler: documentOnly,
      schema: {
        tags: ['Events'],
        summary: 'Emit an event to the fan-out; with wait=true, answer with its decision once made (up to MLDEPLOY_EVENT_WAIT_MS)',
        querystring: { type: 'object', properties: { wait: { type: 'string', enum: ['', 'true', 'false', '1', '0'] } } },
        body: EVENT_BODY,
        response: { 200: EMIT_RESULT, 202: EMIT_RESULT, 400: error, 401: error, 413: error, 503: error },
      },
    },
    async (request, reply) => {
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
    },
  );

  app.get(
    '/v1/streams/:name',
    {
      validatorCompiler: documentOnly,
      schema: {
        tags: ['Events'],
        summary: 'A page of the predictions or decisions stream after an offset (Server-Sent Events with Accept: text/event-stream)',
        params: { type: 'object', required: ['name'], properties: { name: { type: 'string', enum: [...STREAM_NAMES] } } },
        querystring: {
          type: 'object',
          properties: {
            after: { type: 'string', pattern: OFFSET, description: 'default 0' },
            limit: { type: 'string', pattern: PAGE, description: `default 100, at most ${MAX_PAGE} are returned` },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['stream', 'records', 'next'],
            properties: { stream: { type: 'string' }, records: { type: 'array', items: { type: 'object', additionalProperties: true } }, next: { type: 'integer' } },
          },
          400: error,
          401: error,
          404: error,
          414: error,
        },
      },
    },
    async (request, reply) => {
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
    },
  );
}
