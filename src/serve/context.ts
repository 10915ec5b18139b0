// What the route plugins of the web service share.
import type { Config } from '../config.ts';
import type { Pool } from '../db/pool.ts';
import type { PredictionLog } from './prediction-log.ts';
import type { Scorer } from './scorer.ts';
import type { ServingModels } from './serving-models.ts';

export type ServeConfig = Config['serve'];

export interface ServeContext {
  pool: Pool;
  config: ServeConfig;
  serving: ServingModels;
  scorer: Scorer;
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
