// The online web service: a fastify instance with the prediction routes, the Open
// Inference Protocol v2, operations routes and any extra route plugins (streaming), all
// behind one auth hook. Importable without the CLI: tests build it and use inject().
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Pool } from '../db/pool.ts';
import { log } from '../log.ts';
import { PACKAGE_ROOT } from '../package-root.ts';
import type { ModelCache } from '../registry/runtime.ts';
import type { ModelStore } from '../registry/store.ts';
import { DataPlane } from '../inference/data-plane.ts';
import { installAuth } from './auth.ts';
import type { ServeConfig, ServeContext } from './context.ts';
import { ErrorSchema, installErrorHandler } from './errors.ts';
import { httpLatency, httpRequests } from './metrics.ts';
import { PredictionLog } from './prediction-log.ts';
import { WebInputSampler } from '../monitoring/sampling.ts';
import { opsRoutes } from './routes-ops.ts';
import { predictRoutes } from './routes-predict.ts';
import { reportRoutes } from './routes-reports.ts';
import { v2ContentTypes, v2Routes } from './routes-v2.ts';

export type RoutePlugin = (app: FastifyInstance) => Promise<void> | void;

/** Each server's context, for the services beside it (the v2 gRPC service) to share. */
const contexts = new WeakMap<FastifyInstance, ServeContext>();
export const contextOf = (app: FastifyInstance): ServeContext | undefined => contexts.get(app);

export interface ServerOptions {
  pool: Pool;
  store: ModelStore;
  models: ModelCache;
  config: ServeConfig;
  /** Registered after the auth hook, so their routes need the token too. */
  plugins?: RoutePlugin[];
  /** At the default info level, log warnings and errors only (mldeploy dev prints its own human-readable lines). */
  quiet?: boolean;
}

const PACKAGE_VERSION: string = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')).version;
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Every record (MLDEPLOY_PREDICTION_LOG), or a sample of monitored models' records for their monitors, or none. */
function predictionLog(pool: Pool, config: ServeConfig): PredictionLog | undefined {
  if (config.predictionLog) return new PredictionLog(pool, config.predictionLogQueue);
  if (config.monitorSampleRate > 0) return new PredictionLog(pool, config.predictionLogQueue, new WebInputSampler(pool, config.monitorSampleRate));
  return undefined;
}

export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  const { config } = opts;
  const app = Fastify({
    loggerInstance: (opts.quiet && log.level === 'info' ? log.child({}, { level: 'warn' }) : log) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    // Far above the longest parameter the schemas allow (200), so a too long one gets the schema's 400, not a 414.
    routerOptions: { maxParamLength: 4096 },
    // Keep-alive connections that are idle close at once on shutdown; busy ones finish first.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Types are checked by the schemas and the feature mapper, never silently coerced.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  });

  // The process's one resolver (shared with a worker in the same process): it hears promotions
  // at once and polls every aliasPollMs only while it cannot listen.
  const resolver = opts.models.resolver;
  resolver.setPollInterval(config.aliasPollMs);
  const ctx: ServeContext = {
    pool: opts.pool,
    config,
    store: opts.store,
    resolver,
    plane: new DataPlane({ lane: 'web', resolver, maxBatch: config.batchMax, maxDelayUs: config.batchDelayUs }),
    predictionLog: predictionLog(opts.pool, config),
    version: PACKAGE_VERSION,
  };
  contexts.set(app, ctx);

  // Ready once the default model is loaded; a missing one is retried (and loads when registered).
  app.addHook('onReady', async () => {
    await ctx.predictionLog?.start();
    resolver.start();
    await resolver.require([config.defaultModel]);
  });
  app.addHook('onClose', async () => {
    await ctx.predictionLog?.close();
  });

  installErrorHandler(app);
  app.addSchema(ErrorSchema);
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const served = request.served;
    const model = served?.name ?? '';
    httpRequests.inc({ route, model, version: served ? String(served.version) : '', status: String(reply.statusCode) });
    httpLatency.observe({ route, model }, reply.elapsedTime / 1000);
  });

  await app.register(swagger, {
    openapi: {
      info: { title: 'mldeploy web service', version: PACKAGE_VERSION, description: 'Online predictions from the mldeploy model registry.' },
      components: config.apiToken ? { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } } : {},
      security: config.apiToken ? [{ bearer: [] }] : [],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  installAuth(app, config.apiToken);
  v2ContentTypes(app);
  await app.register(async (child) => opsRoutes(child, ctx));
  await app.register(async (child) => predictRoutes(child, ctx));
  await app.register(async (child) => v2Routes(child, ctx));
  await app.register(async (child) => reportRoutes(child, ctx));
  for (const plugin of opts.plugins ?? []) await app.register(async (child) => plugin(child));
  return app;
}
