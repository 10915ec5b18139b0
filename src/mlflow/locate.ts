// Where an MLflow model's files are: resolves a model URI (alias, version, logged model, run
// artifact path, local directory) to a reader of its artifact files and what provenance records.
import fs from 'node:fs';
import path from 'node:path';
import { MlflowClient, MlflowError, type MlflowSettings } from './client.ts';
import type { ModelSource } from './uri.ts';

export interface LocatedModel {
  /** Identifies what is imported: importing it again under the same name stores nothing new. */
  key: string;
  provenance: {
    trackingUri?: string;
    registeredModel?: string;
    registeredVersion?: string;
    runId?: string;
    modelId?: string;
    sourceUri: string;
    artifactUri: string;
  };
  /** One artifact file of the model; undefined when the model has no such file. */
  read(file: string): Promise<Buffer | undefined>;
}

export async function locateModel(source: ModelSource, uri: string, settings: MlflowSettings): Promise<LocatedModel> {
  if (source.kind === 'local') return localModel(source.dir);
  const client = new MlflowClient(settings);
  const remote = (artifactUri: string) => (file: string) => readArtifact(client, artifactUri, file);

  if (source.kind === 'alias' || source.kind === 'version') {
    const mv = source.kind === 'alias' ? await client.versionByAlias(source.name, source.alias) : await client.version(source.name, source.version);
    if (mv.status && mv.status !== 'READY') throw new MlflowError(`MLflow version ${mv.name}/${mv.version} is ${mv.status}, not READY`);
    const artifactUri = await client.downloadUri(mv.name, mv.version);
    const modelId = /^models:\/(m-[0-9a-f]+)$/.exec(mv.source)?.[1];
    return {
      key: `${client.trackingUri}|models:/${mv.name}/${mv.version}`,
      provenance: {
        trackingUri: client.trackingUri,
        registeredModel: mv.name,
        registeredVersion: mv.version,
        runId: mv.run_id || undefined,
        modelId,
        sourceUri: mv.source,
        artifactUri,
      },
      read: remote(artifactUri),
    };
  }
  if (source.kind === 'logged') {
    const info = await client.loggedModel(source.modelId);
    return {
      key: `${client.trackingUri}|${uri}`,
      provenance: { trackingUri: client.trackingUri, runId: info.source_run_id, modelId: info.model_id, sourceUri: uri, artifactUri: info.artifact_uri },
      read: remote(info.artifact_uri),
    };
  }
  // runs:/<run>/<path>: since MLflow 3, log_model stores a logged model named <path> that the
  // run lists among its outputs; older runs keep the model among the run's own artifacts.
  const run = await client.run(source.runId);
  for (const output of run.outputs?.model_outputs ?? []) {
    const info = await client.loggedModel(output.model_id);
    if (info.name === source.artifactPath) {
      return {
        key: `${client.trackingUri}|${uri}`,
        provenance: { trackingUri: client.trackingUri, runId: source.runId, modelId: info.model_id, sourceUri: uri, artifactUri: info.artifact_uri },
        read: remote(info.artifact_uri),
      };
    }
  }
  const artifactUri = `${run.info.artifact_uri.replace(/\/+$/, '')}/${source.artifactPath}`;
  return {
    key: `${client.trackingUri}|${uri}`,
    provenance: { trackingUri: client.trackingUri, runId: source.runId, sourceUri: uri, artifactUri },
    read: remote(artifactUri),
  };
}

function readArtifact(client: MlflowClient, artifactUri: string, file: string): Promise<Buffer | undefined> {
  if (artifactUri.startsWith('mlflow-artifacts:')) return client.artifact(artifactUri, file);
  // A store on this machine's disk (a server started without --artifacts-destination).
  const local = artifactUri.startsWith('file:') ? new URL(artifactUri).pathname : artifactUri.startsWith('/') ? artifactUri : undefined;
  if (local !== undefined) return Promise.resolve(readLocal(path.join(local, file)));
  throw new MlflowError(
    `the model's artifacts are at ${artifactUri}, which the tracking server does not proxy: run the server with its artifact proxy (mlflow server --artifacts-destination …), or download the model directory and import it as a local path`,
  );
}

function readLocal(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MlflowError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function localModel(dir: string): LocatedModel {
  return {
    key: `file://${dir}`,
    provenance: { sourceUri: `file://${dir}`, artifactUri: `file://${dir}` },
    read: (file) => Promise.resolve(readLocal(path.join(dir, file))),
  };
}
