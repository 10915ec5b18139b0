// Every failure leaves the service as `{"error": "..."}` with a 4xx status when the
// caller can fix it; anything else is logged and answered with a bare 500.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ModelNotFoundError } from '../registry/store.ts';
import { RefError } from '../registry/refs.ts';

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export const badRequest = (message: string, details?: Record<string, unknown>) => new HttpError(400, message, details);

export class ClientGoneError extends Error {
  override name = 'ClientGoneError';
  constructor() {
    super('the client closed the connection before its answer was ready');
  }
}

/**
 * Aborts when the client's connection closes before the response is sent, so that a large
 * request stops scoring (between slices) instead of finishing for nobody, and a shutdown that
 * has already drained the live requests never has such work still running on a model.
 */
export function untilClientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new ClientGoneError());
  });
  return controller.signal;
}

/** The JSON Schema of every error body, so the OpenAPI document lists it. */
export const ErrorSchema = {
  $id: 'Error',
  type: 'object',
  required: ['error'],
  properties: {
    error: { type: 'string' },
    errors: {
      type: 'array',
      items: {
        type: 'object',
        properties: { index: { type: 'integer' }, field: { type: 'string' }, reason: { type: 'string' } },
      },
    },
  },
} as const;

export const errorResponses = {
  400: { $ref: 'Error#' },
  401: { $ref: 'Error#' },
  404: { $ref: 'Error#' },
  413: { $ref: 'Error#' },
};

/** A path parameter longer than the router takes (fastify's maxParamLength) is answered 414. */
export const tooLongResponse = { 414: { $ref: 'Error#' } };

/** A route's path as a pattern for concrete paths: each `:param` is one non-empty segment, `*` any rest. */
function pathPattern(url: string): RegExp {
  const parts = url.split(/(:[A-Za-z0-9_]+|\*)/);
  const escaped = parts.map((part) => (part === '*' ? '.*' : part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${escaped.join('')}$`);
}

function describeValidation(err: FastifyError): string {
  const first = err.validation?.[0];
  if (!first) return err.message;
  const where = `${err.validationContext ?? 'body'}${first.instancePath.replaceAll('/', '.')}`;
  const params = first.params as Record<string, unknown>;
  if (first.keyword === 'required') return `${where}.${String(params.missingProperty)} is missing`;
  if (first.keyword === 'additionalProperties') return `${where}.${String(params.additionalProperty)} is not allowed`;
  return `${where} ${first.message ?? 'is invalid'}`;
}

type Answer = (request: FastifyRequest, reply: FastifyReply) => FastifyReply;

/**
 * Answers an unknown path 404 and a known path asked with a method it does not take 405, with
 * an Allow header that lists the methods it takes. Call before routes are added: it records them.
 */
function installNotFound(app: FastifyInstance): Answer {
  const routes: Array<{ pattern: RegExp; methods: string[] }> = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    routes.push({ pattern: pathPattern(route.url), methods });
  });
  const notFound: Answer = (request, reply) => {
    const path = request.url.split('?')[0];
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => r.methods))].sort();
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      return reply
        .code(405)
        .header('allow', allowed.join(', '))
        .send({ error: `${request.method} is not allowed on ${path.slice(0, 200)} (allowed: ${allowed.join(', ')})` });
    }
    return reply.code(404).send({ error: `no route ${request.method} ${path.slice(0, 200)}` });
  };
  app.setNotFoundHandler(notFound);
  return notFound;
}

export function installErrorHandler(app: FastifyInstance): void {
  const notFound = installNotFound(app);
  app.setErrorHandler((err: FastifyError, request, reply) => {
    // A request for no route can fail in body parsing (a QUERY without a Content-Type, an empty
    // JSON body) before the not-found handler says 404 or 405: say that anyway.
    if (request.is404 && (err.code === 'FST_ERR_ROUTE_MISSING_CONTENT_TYPE' || err.code?.startsWith('FST_ERR_CTP_'))) return notFound(request, reply);
    if (err instanceof HttpError) return reply.code(err.statusCode).send({ error: err.message, ...err.details });
    // Nobody is left to answer (499, as nginx logs it).
    if (err instanceof ClientGoneError) return reply.code(499).send({ error: err.message });
    if (err instanceof ModelNotFoundError) return reply.code(404).send({ error: err.message });
    if (err instanceof RefError) return reply.code(400).send({ error: err.message });
    if (err.validation) return reply.code(400).send({ error: describeValidation(err) });
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) return reply.code(status).send({ error: err.message });
    request.log.error({ err, url: request.url }, 'request failed');
    return reply.code(500).send({ error: 'internal error' });
  });
}
