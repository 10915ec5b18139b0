// `mldeploy serve`: the online web service on its own, and the start-up shared with `mldeploy dev`.
import type { Command } from 'commander';
import type { Client } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../config.ts';
import { openStack, type Stack } from '../stack/stack.ts';
import { ModelCache } from '../registry/runtime.ts';
import { ModelStore } from '../registry/store.ts';
import { buildServer, type RoutePlugin } from '../serve/server.ts';
import { UsageError } from './context.ts';
import { streamingRoutes } from '../streaming/http.ts';
import { closeStreamBackends, streamingSettings } from '../streaming/settings.ts';

const say = (line: string) => process.stdout.write(`${line}\n`);

export interface WebService {
  app: FastifyInstance;
  url: string;
  /** Stops accepting connections, lets in-flight requests finish, flushes the prediction log. */
  close(): Promise<void>;
}

export interface WebServiceOptions {
  host?: string;
  port?: number;
  /** A worker's model cache, shared when the worker runs in this process. */
  models?: ModelCache;
  plugins?: RoutePlugin[];
  /** A client on the NativeConnection of a worker in this process that polls the main task queue: events start eagerly on it. */
  eagerClient?: Client;
}

/** Builds and starts the web service on a stack. */
export async function startWebService(stack: Stack, opts: WebServiceOptions = {}): Promise<WebService> {
  const store = new ModelStore(stack.pool);
  const models = opts.models ?? new ModelCache(store, stack.config.modelThreads);
  const config = { ...stack.config.serve, host: opts.host ?? stack.config.serve.host, port: opts.port ?? stack.config.serve.port };
  const plugins = [...(opts.plugins ?? []), ...(stack.temporal ? [await eventRoutes(stack, opts.eagerClient)] : [])];
  const app = await buildServer({ pool: stack.pool, store, models, config, plugins });
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  return {
    app,
    url: `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`,
    async close() {
      await app.close();
      if (!opts.models) await models.release();
    },
  };
}

/** POST /v1/events and GET /v1/streams/…: events start fan-out workflows on the stack's Temporal. */
async function eventRoutes(stack: Stack, eagerClient?: Client): Promise<RoutePlugin> {
  const client = await stack.client();
  const backend = await streamingSettings(stack.config.streaming, stack.pool).backend();
  const deps = { client, eagerClient, taskQueue: stack.config.taskQueue, backend, waitMs: stack.config.streaming.waitMs, callbackHosts: stack.config.streaming.callbackHosts };
  return (app) => streamingRoutes(app, deps);
}

/** One request to POST /predict with the course's example ride, as a line to print. */
export async function demoPrediction(url: string, token?: string): Promise<string> {
  const ride = { PULocationID: 10, DOLocationID: 50, trip_distance: 40 };
  const res = await fetch(`${url}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(ride),
  });
  return `POST /predict ${JSON.stringify(ride)} → ${res.status} ${await res.text()}`;
}

function portNumber(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new UsageError(`--port must be a port number (0-65535), got ${JSON.stringify(value)}`);
  return n;
}

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

export function serveCommand(program: Command): void {
  program
    .command('serve')
    .description('run the online web service (POST /predict, /v1 models, events and streams, Open Inference Protocol v2) until SIGINT or SIGTERM')
    .option('--port <port>', 'port to listen on (default: MLDEPLOY_SERVE_PORT, 9696)', portNumber)
    .option('--host <host>', 'address to listen on (default: MLDEPLOY_SERVE_HOST, 127.0.0.1)')
    .action(async (opts: { port?: number; host?: string }) => {
      const stack = await openStack(loadConfig(), { temporal: true });
      try {
        const service = await startWebService(stack, opts);
        say(`web service on ${service.url} (docs ${service.url}/docs); default model ${stack.config.serve.defaultModel}`);
        const signal = await untilSignal();
        say(`${signal}: finishing in-flight requests…`);
        await service.close();
        await closeStreamBackends();
      } finally {
        await stack.close();
      }
    });
}
