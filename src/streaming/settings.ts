// Where the streaming code finds its routing file and its streams. Each process's composition
// root (src/resources.ts) builds one from the configuration and passes it to everything that
// appends to or reads a stream, so the process has one stream backend; tests and benchmarks
// build their own (a routing file and a stream namespace of their own).
import type { Config } from '../config.ts';
import type { Pool } from '../db/pool.ts';
import type { StreamBackend } from './backend.ts';
import { NatsStreamBackend } from './nats-backend.ts';
import { PostgresStreamBackend } from './pg-backend.ts';

export type StreamingConfig = Config['streaming'];

export interface StreamingSettings {
  routingFile: string;
  /** Hosts decision callbacks may go to; undefined allows any. */
  callbackHosts?: readonly string[];
  /** The process's one stream backend, opened on first use. */
  backend(): Promise<StreamBackend>;
}

/** Streaming settings together with the backend they open: whoever built them closes them, once. */
export interface OwnedStreamingSettings extends StreamingSettings {
  /** Closes the backend if it was opened. */
  close(): Promise<void>;
}

export function openStreamBackend(config: Pick<StreamingConfig, 'backend' | 'namespace' | 'natsUrl'>, pool: Pool): Promise<StreamBackend> {
  if (config.backend === 'nats') return NatsStreamBackend.connect(config.natsUrl, config.namespace);
  return Promise.resolve(new PostgresStreamBackend(pool, config.namespace));
}

export function streamingSettings(
  config: Pick<StreamingConfig, 'routingFile' | 'backend' | 'namespace' | 'natsUrl'> & Partial<Pick<StreamingConfig, 'callbackHosts'>>,
  pool: Pool,
): OwnedStreamingSettings {
  let backend: Promise<StreamBackend> | undefined;
  return {
    routingFile: config.routingFile,
    callbackHosts: config.callbackHosts,
    backend() {
      if (!backend) {
        const opening = openStreamBackend(config, pool);
        backend = opening;
        opening.catch(() => {
          if (backend === opening) backend = undefined;
        });
      }
      return backend;
    },
    async close() {
      const opened = backend;
      backend = undefined;
      if (!opened) return;
      const result = await Promise.allSettled([opened]);
      if (result[0].status === 'fulfilled') await result[0].value.close();
    },
  };
}
