// The heavy resources of one mldeploy process, built once by the process's composition root
// (the `worker`, `serve` and `dev` commands, and one-off commands that run a worker) and
// passed to everything that needs them: the stack (PostgreSQL pool, Temporal connections),
// the model registry and its cache, the process's one stream backend and its inbound event log.
import type { Config } from './config.ts';
import type { Pool } from './db/pool.ts';
import { ModelCache } from './registry/runtime.ts';
import { ModelStore } from './registry/store.ts';
import { openStack, type Stack } from './stack/stack.ts';
import { PostgresInboundLog, type InboundLog } from './streaming/inbound-log.ts';
import { NatsStreamBackend } from './streaming/nats-backend.ts';
import { NatsInboundLog } from './streaming/nats-inbound-log.ts';
import { streamingSettings, type StreamingSettings } from './streaming/settings.ts';

export interface Resources {
  config: Config;
  stack: Stack;
  pool: Pool;
  store: ModelStore;
  /** Every model version loads once per process, whoever uses it (workers, web service). */
  models: ModelCache;
  /** The routing file and the process's one stream backend (opened on first use). */
  streaming: StreamingSettings;
  /** The inbound event log of batched fan-out (in the stream namespace). */
  inbound: InboundLog;
  /** Releases the models, closes the stream backend and the inbound log, then the stack. Stop workers and servers first. */
  close(): Promise<void>;
}

export async function openResources(config: Config, needs: { temporal: boolean }): Promise<Resources> {
  const stack = await openStack(config, needs);
  const store = new ModelStore(stack.pool);
  const models = new ModelCache(store, config.modelThreads);
  const streaming = streamingSettings(config.streaming, stack.pool);
  const inbound = inboundLog(config, stack.pool, streaming);
  return {
    config,
    stack,
    pool: stack.pool,
    store,
    models,
    streaming,
    inbound,
    async close() {
      try {
        await models.release();
        // The NATS inbound log shares the stream backend's connection: it closes first.
        await inbound.close();
        await streaming.close();
      } finally {
        await stack.close();
      }
    },
  };
}

/**
 * The inbound log on the configured stream backend: PostgreSQL, or JetStream on the stream
 * backend's own NATS connection (one NATS connection per process).
 */
function inboundLog(config: Config, pool: Pool, streaming: StreamingSettings): InboundLog {
  if (config.streaming.backend !== 'nats') return new PostgresInboundLog(pool, config.streaming.namespace);
  return new NatsInboundLog(async () => {
    const backend = await streaming.backend();
    if (!(backend instanceof NatsStreamBackend)) throw new Error('the NATS inbound log needs the NATS stream backend');
    return backend.connection;
  }, config.streaming.namespace);
}

/** Opens the resources, runs `work` with them and closes them whatever happens. */
export async function withResources<T>(config: Config, needs: { temporal: boolean }, work: (resources: Resources) => Promise<T>): Promise<T> {
  const resources = await openResources(config, needs);
  try {
    return await work(resources);
  } finally {
    await resources.close();
  }
}
