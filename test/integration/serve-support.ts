// Shared set-up for the web service tests: a server on the test database with small limits.
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config.ts';
import { readExampleModel } from '../../src/demo.ts';
import { registerModel } from '../../src/registry/register.ts';
import { ModelCache } from '../../src/registry/runtime.ts';
import { buildServer, type RoutePlugin } from '../../src/serve/server.ts';
import type { ServeConfig } from '../../src/serve/context.ts';
import { uniqueName, type TestEnv } from '../helpers.ts';

export const RIDE = { PULocationID: 10, DOLocationID: 50, trip_distance: 40 };

/** Rides whose predictions fall inside the model's clip range, so raw v2 outputs equal clipped ones. */
export const RIDES = [
  { PULocationID: 10, DOLocationID: 50, trip_distance: 4 },
  { PULocationID: 132, DOLocationID: 236, trip_distance: 17.5 },
  { PULocationID: 7, DOLocationID: 7, trip_distance: 0.8 },
  { PULocationID: 161, DOLocationID: 237, trip_distance: 1.9 },
  { PULocationID: 48, DOLocationID: 68, trip_distance: 2.6 },
];

export function serveConfig(overrides: Partial<ServeConfig> = {}): ServeConfig {
  return { ...loadConfig({}).serve, aliasPollMs: 100, ...overrides };
}

export interface TestServer {
  app: FastifyInstance;
  models: ModelCache;
  close(): Promise<void>;
}

export async function startServer(env: TestEnv, config: ServeConfig, plugins?: RoutePlugin[]): Promise<TestServer> {
  const models = new ModelCache(env.store, 1);
  const app = await buildServer({ pool: env.pool, store: env.store, models, config, plugins });
  await app.ready();
  return {
    app,
    models,
    async close() {
      await app.close();
      await models.release();
    },
  };
}

/** Registers an example model's file as the next version of `name` (one name can hold different files). */
export async function registerAs(env: TestEnv, name: string, example: 'trip-duration' | 'fare', alias?: string) {
  return registerModel(env.store, { name, ...readExampleModel(example), alias, maxBytes: 64 * 1024 * 1024 });
}

export const freshName = (prefix = 'serve') => uniqueName(prefix);

/** Polls until `check` returns true or the time runs out. */
export async function waitFor(check: () => Promise<boolean> | boolean, what: string, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
