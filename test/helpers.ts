// Shared plumbing for integration tests: the run's Temporal server and database, unique
// names so tests never see each other's rows, and a worker on a task queue of its own.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { inject } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { installTemporalLogging } from '../src/temporal-logging.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import { ModelStore } from '../src/registry/store.ts';
import { registerModel } from '../src/registry/register.ts';
import { ModelCache } from '../src/registry/runtime.ts';
import { streamingSettings } from '../src/streaming/settings.ts';
import { PostgresInboundLog } from '../src/streaming/inbound-log.ts';
import { createWorker } from '../src/worker.ts';
import { readExampleModel } from '../src/demo.ts';
import type { ActivityDeps } from '../activities/deps.ts';

export const FIXTURES = path.resolve('test/fixtures/models');

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export interface TestEnv {
  pool: Pool;
  store: ModelStore;
  client: Client;
  connection: NativeConnection;
  temporalAddress: string;
  databaseUrl: string;
  close(): Promise<void>;
}

export async function openTestEnv(): Promise<TestEnv> {
  installTemporalLogging();
  const temporalAddress = inject('temporalAddress');
  const databaseUrl = inject('databaseUrl');
  const pool = createPool(databaseUrl, 20, 'mldeploy-test');
  const clientConnection = await Connection.connect({ address: temporalAddress });
  const connection = await NativeConnection.connect({ address: temporalAddress });
  return {
    pool,
    store: new ModelStore(pool),
    client: new Client({ connection: clientConnection }),
    connection,
    temporalAddress,
    databaseUrl,
    async close() {
      await connection.close();
      await clientConnection.close();
      await pool.end();
    },
  };
}

/** Registers one of the example models under a fresh name, so versions never collide across runs. */
export async function registerExample(env: TestEnv, example: 'trip-duration' | 'fare' | 'tip', alias = 'production') {
  const name = uniqueName(example);
  return registerModel(env.store, { name, ...readExampleModel(example), alias, maxBytes: 64 * 1024 * 1024 });
}

/**
 * A worker in this process on its own task queue, with the shipped routing and the default
 * stream namespace (as `mldeploy worker` runs with no configuration); stop it with the returned function.
 */
export async function startTestWorker(env: TestEnv, taskQueue = uniqueName('tq'), opts: { monitoring?: ActivityDeps['monitoring'] } = {}) {
  const models = new ModelCache(env.store, 1);
  const settings = streamingSettings({ routingFile: path.resolve('config/routing.json'), backend: 'postgres', namespace: 'mldeploy', natsUrl: '127.0.0.1:4222' }, env.pool);
  const inbound = new PostgresInboundLog(env.pool, 'mldeploy');
  const worker = await createWorker(
    { connection: env.connection, namespace: 'default', pool: env.pool, store: env.store, models, settings, inbound, monitoring: opts.monitoring },
    taskQueue,
  );
  const running = worker.run();
  return {
    taskQueue,
    worker,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await models.release();
      await settings.close();
      await inbound.close();
    },
  };
}
