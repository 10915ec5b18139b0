// All of mldeploy's activities, built once per worker process (models load once per process).
import { createBatchActivities } from './batch.ts';
import { createStreamingActivities } from './streaming.ts';
import type { ActivityDeps } from './deps.ts';

export type { ActivityDeps } from './deps.ts';

export function createActivities(deps: ActivityDeps) {
  return {
    ...createBatchActivities(deps),
    ...createStreamingActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
