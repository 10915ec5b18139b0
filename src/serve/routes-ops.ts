// Operations routes: liveness, readiness, Prometheus metrics, and the optional bare route
// the benchmark uses as its HTTP floor.
import type { FastifyInstance } from 'fastify';
import { metricsRegistry } from '../metrics.ts';
import type { ServeContext } from './context.ts';

export async function opsRoutes(app: FastifyInstance, ctx: ServeContext): Promise<void> {
  const tags = ['Operations'];
  app.get('/healthz', { schema: { tags, summary: 'Liveness', response: { 200: { type: 'object', properties: { status: { type: 'string' } } } } } }, async () => ({ status: 'ok' }));

  const readiness = { type: 'object', properties: { status: { type: 'string' }, models: { type: 'object', additionalProperties: { type: 'integer' } } } };
  app.get('/readyz', { schema: { tags, summary: 'Ready once the default models are loaded', response: { 200: readiness, 503: readiness } } }, async (_request, reply) => {
    const ready = ctx.resolver.ready();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'loading', models: ctx.resolver.snapshot() });
  });

  app.get('/metrics', { schema: { tags, summary: 'Prometheus metrics' } }, async (_request, reply) => {
    reply.header('content-type', metricsRegistry.contentType);
    return metricsRegistry.metrics();
  });

  if (ctx.config.noopRoute) {
    app.get('/bench/noop', { schema: { hide: true, response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } } }, async () => ({ ok: true }));
  }
}
