// Follows an MLflow alias: every interval, one activity imports the version the alias names
// (validated like `models register`) and moves the mldeploy alias to it. A version that fails
// validation is not promoted; the reason stays in the status query. Long runs continue as new.
import { continueAsNew, defineQuery, proxyActivities, setHandler, sleep } from '@temporalio/workflow';
import type { FollowerActivities, FollowTarget } from '../activities/model-follower.ts';

export interface FollowerStatus {
  checks: number;
  lastCheckAt?: string;
  /** The MLflow version the alias named at the last check. */
  mlflowVersion?: string;
  /** The mldeploy version the alias points at, with the MLflow version it came from. */
  promoted?: { version: number; mlflowVersion: string; at: string };
  /** The last MLflow version that failed validation, and why. */
  rejected?: { mlflowVersion: string; reason: string; at: string };
  /** The last check that could not complete (MLflow unreachable, …). */
  lastError?: string;
}

export interface FollowerArgs extends FollowTarget {
  everyMs: number;
  status?: FollowerStatus;
  /** Checks before continuing as new (default 500); the history recorder uses a few. */
  checksPerRun?: number;
}

export const followerStatusQuery = defineQuery<FollowerStatus>('status');

const { followMlflowAlias } = proxyActivities<FollowerActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 3, initialInterval: '1 second' },
});

const CHECKS_PER_RUN = 500;

export async function modelFollower(args: FollowerArgs): Promise<void> {
  const status: FollowerStatus = args.status ?? { checks: 0 };
  setHandler(followerStatusQuery, () => status);
  const target: FollowTarget = { name: args.name, alias: args.alias, from: args.from, trackingUri: args.trackingUri };
  for (let i = 0; i < (args.checksPerRun ?? CHECKS_PER_RUN); i++) {
    const at = new Date().toISOString();
    try {
      const outcome = await followMlflowAlias({ ...target, skipRejected: status.rejected?.mlflowVersion });
      status.mlflowVersion = outcome.mlflowVersion;
      status.lastError = undefined;
      if (outcome.rejected !== undefined) {
        if (status.rejected?.mlflowVersion !== outcome.mlflowVersion) status.rejected = { mlflowVersion: outcome.mlflowVersion, reason: outcome.rejected, at };
      } else if (outcome.version !== undefined && status.promoted?.version !== outcome.version) {
        status.promoted = { version: outcome.version, mlflowVersion: outcome.mlflowVersion, at };
      }
    } catch (err) {
      status.lastError = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
    }
    status.checks++;
    status.lastCheckAt = at;
    await sleep(args.everyMs);
  }
  await continueAsNew<typeof modelFollower>({ ...args, status });
}
