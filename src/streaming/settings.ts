// Where the streaming code finds its routing file and its streams. Built from the
// configuration for the CLI and workers; tests and benchmarks build their own (a routing
// file and a stream namespace of their own).
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

export function openStreamBackend(config: Pick<StreamingConfig, 'backend' | 'namespace' | 'natsUrl'>, pool: Pool): Promise<StreamBackend> {
  if (config.backend === 'nats') return NatsStreamBackend.connect(config.natsUrl, config.namespace);
  return Promise.resolve(new PostgresStreamBackend(pool, config.namespace));
}

/** Every backend opened through streamingSettings in this process, so shutdown can close them. */
const opened = new Set<Promise<StreamBackend>>();

export async function closeStreamBackends(): Promise<void> {
  const all = [...opened];
  opened.clear();
  for (const backend of await Promise.allSettled(all)) if (backend.status === 'fulfilled') await backend.value.close();
}

export function streamingSettings(config: Pick<StreamingConfig, 'routingFile' | 'backend' | 'namespace' | 'natsUrl'> & Partial<Pick<StreamingConfig, 'callbackHosts'>>, pool: Pool): StreamingSettings {
  let backend: Promise<StreamBackend> | undefined;
  return {
    routingFile: config.routingFile,
    callbackHosts: config.callbackHosts,
    backend() {
      if (!backend) {
        const opening = openStreamBackend(config, pool);
        backend = opening;
        opened.add(opening);
        opening.catch(() => {
          backend = undefined;
          opened.delete(opening);
        });
      }
      return backend;
    },
  };
}
