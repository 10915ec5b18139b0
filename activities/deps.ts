import type { Pool } from '../src/db/pool.ts';
import type { ModelCache } from '../src/registry/runtime.ts';
import type { ModelStore } from '../src/registry/store.ts';

/** What activities share within one worker process: one pool, one registry, one model cache. */
export interface ActivityDeps {
  pool: Pool;
  store: ModelStore;
  models: ModelCache;
}
