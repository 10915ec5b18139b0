import type { Pool } from '../src/db/pool.ts';
import type { ModelCache } from '../src/registry/runtime.ts';
import type { ModelStore } from '../src/registry/store.ts';
import type { MonitoringSettings } from '../src/monitoring/alerts.ts';
import type { StreamInputSampler } from '../src/monitoring/sampling.ts';

/** What activities share within one worker process: one pool, one registry, one model cache. */
export interface ActivityDeps {
  pool: Pool;
  store: ModelStore;
  models: ModelCache;
  /** Report links, the drift alert webhook and its allowed hosts (src/config.ts); none: no alerts. */
  monitoring?: Pick<MonitoringSettings, 'publicUrl' | 'alertWebhookUrl' | 'alertHosts'>;
  /** Keeps a sample of monitored models' stream features for their prediction-stream monitors; none: nothing kept. */
  streamSampler?: StreamInputSampler;
}
