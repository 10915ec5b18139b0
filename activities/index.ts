// All of mldeploy's activities, built once per worker process (models load once per process).
import { createBatchActivities } from './batch.ts';
import { createStreamingActivities } from './streaming.ts';
import type { ActivityDeps } from './deps.ts';
import type { StreamingSettings } from '../src/streaming/settings.ts';

export type { ActivityDeps } from './deps.ts';

/** `streaming`: the process's routing file and its one stream backend. */
export function createActivities(deps: ActivityDeps, streaming: StreamingSettings) {
  return {
    ...createBatchActivities(deps),
    ...createStreamingActivities(deps, streaming),
  };
}

export type Activities = ReturnType<typeof createActivities>;
