// The model follower's one activity: import the version an MLflow alias names and point an
// mldeploy alias at it. Importing is idempotent (one mldeploy version per MLflow version), so
// a retried or repeated check stores nothing new.
import { loadConfig } from '../src/config.ts';
import { MlflowClient, MlflowUnreachableError } from '../src/mlflow/client.ts';
import { importModel } from '../src/mlflow/import.ts';
import { parseModelSource } from '../src/mlflow/uri.ts';
import type { ActivityDeps } from './deps.ts';

export interface FollowTarget {
  /** The mldeploy model name and alias to move. */
  name: string;
  alias: string;
  /** models:/<registered-name>@<alias> */
  from: string;
  /** The tracking server, without credentials (the worker's MLFLOW_TRACKING_* variables supply those). */
  trackingUri: string;
}

export interface FollowOutcome {
  mlflowVersion: string;
  /** The mldeploy version the alias now points at; undefined when rejected. */
  version?: number;
  /** Why the MLflow version was not promoted. */
  rejected?: string;
}

export function createFollowerActivities(deps: ActivityDeps) {
  return {
    async followMlflowAlias(target: FollowTarget & { skipRejected?: string }): Promise<FollowOutcome> {
      const config = loadConfig();
      const mlflow = { ...config.mlflow, trackingUri: target.trackingUri };
      const source = parseModelSource(target.from);
      if (source.kind !== 'alias') throw new Error(`a follower follows models:/<name>@<alias>, not ${target.from}`);
      const mv = await new MlflowClient(mlflow).versionByAlias(source.name, source.alias);
      // A version already rejected stays rejected: it is immutable in MLflow.
      if (mv.version === target.skipRejected) return { mlflowVersion: mv.version, rejected: 'already rejected' };
      try {
        const { version } = await importModel(deps.store, {
          name: target.name,
          uri: `models:/${mv.name}/${mv.version}`,
          alias: target.alias,
          maxBytes: config.maxModelBytes,
          mlflow,
        });
        return { mlflowVersion: mv.version, version: version.version };
      } catch (err) {
        if (err instanceof MlflowUnreachableError) throw err; // retried; the version may be fine
        return { mlflowVersion: mv.version, rejected: (err as Error).message };
      }
    },
  };
}

export type FollowerActivities = ReturnType<typeof createFollowerActivities>;
