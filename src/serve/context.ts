// What the route plugins of the web service share.
import type { Config } from '../config.ts';
import type { Pool } from '../db/pool.ts';
import type { DataPlane } from '../inference/data-plane.ts';
import type { ModelResolver } from '../registry/resolver.ts';
import type { ModelStore } from '../registry/store.ts';
import type { PredictionLog } from './prediction-log.ts';

export type ServeConfig = Config['serve'];

export interface ServeContext {
  pool: Pool;
  config: ServeConfig;
  store: ModelStore;
  /** The process's model resolver: which loaded version answers each reference. */
  resolver: ModelResolver;
  /** The inference path, lane 'web', with dynamic batching. */
  plane: DataPlane;
  /** Set when MLDEPLOY_PREDICTION_LOG is on. */
  predictionLog?: PredictionLog;
  version: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The model version that answered, for metrics. */
    served?: { name: string; version: number };
  }
}
