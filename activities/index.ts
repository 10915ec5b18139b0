// All of mldeploy's activities, built once per worker process (models load once per process).
import { createBatchActivities } from './batch.ts';
import { createStreamingActivities } from './streaming.ts';
import { createPartitionActivities } from './stream-partition.ts';
import { createFollowerActivities } from './model-follower.ts';
import { createMonitorActivities } from './monitor.ts';
import type { InboundLog } from '../src/streaming/inbound-log.ts';
import type { ActivityDeps } from './deps.ts';
import type { StreamingSettings } from '../src/streaming/settings.ts';

export type { ActivityDeps } from './deps.ts';

/** `streaming`: the process's routing file and its one stream backend; `inbound`: its inbound event log. */
export function createActivities(deps: ActivityDeps & { inbound: InboundLog }, streaming: StreamingSettings) {
  return {
    ...createBatchActivities(deps),
    ...createStreamingActivities(deps, streaming),
    ...createPartitionActivities({ ...deps, settings: streaming }),
    ...createFollowerActivities(deps),
    ...createMonitorActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
