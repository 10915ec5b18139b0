// `mldeploy serve`: the composition root of a web service process. It opens the process's
// resources once and starts the web service on them, with the event and stream routes.
import type { Command } from 'commander';
import type { Client } from '@temporalio/client';
import { loadConfig } from '../config.ts';
import { openResources, type Resources } from '../resources.ts';
import { startWebService, type WebService } from '../serve/service.ts';
import type { RoutePlugin } from '../serve/server.ts';
import { streamingRoutes } from '../streaming/http.ts';
import { ingressFor, type EventIngress } from '../streaming/ingress.ts';
import { UsageError } from './context.ts';
import { untilSignal } from './signals.ts';

const say = (line: string) => process.stdout.write(`${line}\n`);

export interface WebServiceOptions {
  host?: string;
  port?: number;
  /** A client on the NativeConnection of a worker in this process that polls the main task queue: events start eagerly on it. */
  eagerClient?: Client;
  /** The process's event ingress, when it has one already (mldeploy dev). */
  ingress?: EventIngress;
  /** No info logs (mldeploy dev's terminal is for people). */
  quiet?: boolean;
}

/** The web service on a process's resources: its pool, registry, models and stream backend. */
export async function webServiceFor(resources: Resources, opts: WebServiceOptions = {}): Promise<WebService> {
  const { config, stack } = resources;
  const serve = { ...config.serve, host: opts.host ?? config.serve.host, port: opts.port ?? config.serve.port };
  const plugins = stack.temporal ? [await eventRoutes(resources, opts)] : [];
  return startWebService({ pool: resources.pool, store: resources.store, models: resources.models, config: serve, plugins, quiet: opts.quiet });
}

/** POST /v1/events and GET /v1/streams/…: events go to the fan-out on the stack's Temporal. */
async function eventRoutes(resources: Resources, opts: WebServiceOptions): Promise<RoutePlugin> {
  const ingress = opts.ingress ?? (await ingressFor(resources, opts.eagerClient));
  const deps = { ingress, backend: await resources.streaming.backend() };
  return (app) => {
    // Whoever built the ingress closes it.
    if (!opts.ingress) app.addHook('onClose', async () => ingress.close());
    return streamingRoutes(app, deps);
  };
}

function portNumber(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new UsageError(`--port must be a port number (0-65535), got ${JSON.stringify(value)}`);
  return n;
}

export function serveCommand(program: Command): void {
  program
    .command('serve')
    .description('run the online web service (POST /predict, /v1 models, events and streams, Open Inference Protocol v2) until SIGINT or SIGTERM')
    .option('--port <port>', 'port to listen on (default: MLDEPLOY_SERVE_PORT, 9696)', portNumber)
    .option('--host <host>', 'address to listen on (default: MLDEPLOY_SERVE_HOST, 127.0.0.1)')
    .action(async (opts: { port?: number; host?: string }) => {
      const resources = await openResources(loadConfig(), { temporal: true });
      try {
        const service = await webServiceFor(resources, opts);
        say(`web service on ${service.url} (docs ${service.url}/docs); default model ${resources.config.serve.defaultModel}`);
        if (service.grpcAddress) say(`Open Inference Protocol gRPC on ${service.grpcAddress}`);
        const signal = await untilSignal();
        say(`${signal}: finishing in-flight requests…`);
        await service.close();
      } finally {
        await resources.close();
      }
    });
}
