// Every workflow the mldeploy worker runs. Only deterministic code lives under workflows/.
export { batchScoring } from './batch-scoring.ts';
export { eventFanout } from './event-fanout.ts';
export { modelFollower } from './model-follower.ts';
export { monitorRun } from './monitor.ts';
export { streamPartition } from './stream-partition.ts';
