// `mldeploy models import`: an MLflow model (registry alias or version, run artifact, logged
// model or local directory) becomes a registered mldeploy version, through the same
// validation as `models register`, with its provenance. Nothing is stored on failure, and
// an MLflow version already imported under the name is not stored again.
import { registerModel } from '../registry/register.ts';
import { createSession, sha256 } from '../registry/runtime.ts';
import { readMetadata } from '../registry/metadata.ts';
import { validateAlias, validateModelName } from '../registry/refs.ts';
import type { ModelProvenance, ModelStore, ModelVersion } from '../registry/store.ts';
import { MlflowError, type MlflowSettings } from './client.ts';
import { locateModel } from './locate.ts';
import { exampleRecord, onnxFile, parseMlModel, type MlflowSignature } from './mlmodel.ts';
import { deriveSpec } from './spec.ts';
import { parseModelSource } from './uri.ts';

export interface ImportRequest {
  name: string;
  uri: string;
  alias?: string;
  /** A feature spec; without it, one is derived from the MLflow signature and input example. */
  spec?: unknown;
  maxBytes: number;
  mlflow: MlflowSettings;
}

export interface ImportResult {
  version: ModelVersion;
  /** False when this MLflow model was imported under this name before. */
  created: boolean;
}

export async function importModel(store: ModelStore, req: ImportRequest): Promise<ImportResult> {
  validateModelName(req.name);
  if (req.alias) validateAlias(req.alias);
  const source = parseModelSource(req.uri);
  const located = await locateModel(source, req.uri, req.mlflow);
  if (source.kind !== 'local') {
    const existing = await store.findByProvenance(req.name, located.key);
    if (existing) return { version: req.alias ? await store.promote(req.name, existing.version, req.alias) : existing, created: false };
  }

  const where = located.provenance.artifactUri;
  const text = await located.read('MLmodel');
  if (!text) throw new MlflowError(`no MLmodel file at ${where}: ${req.uri} is not a logged MLflow model`);
  const mlmodel = parseMlModel(text.toString('utf8'));
  const file = onnxFile(mlmodel);
  const bytes = await located.read(file);
  if (!bytes) throw new MlflowError(`the MLmodel names ${file}, which is missing from ${where}`);
  const exampleText = mlmodel.inputExample ? await located.read(mlmodel.inputExample.file) : undefined;
  const example = exampleText && mlmodel.inputExample ? exampleRecord(exampleText.toString('utf8'), mlmodel.inputExample) : undefined;
  const spec = req.spec ?? (bytes.byteLength <= req.maxBytes ? await derivedSpec(bytes, mlmodel.signature, example) : {});

  const key = source.kind === 'local' ? `${located.key}#sha256:${sha256(bytes)}` : located.key;
  const provenance: ModelProvenance = {
    key,
    source: 'mlflow',
    importedFrom: req.uri,
    ...located.provenance,
    runId: located.provenance.runId ?? mlmodel.runId,
    modelId: located.provenance.modelId ?? mlmodel.modelId,
    flavor: 'onnx',
    signature: mlmodel.signature,
  };
  const version = await registerModel(store, { name: req.name, bytes, spec, alias: req.alias, maxBytes: req.maxBytes, provenance });
  return { version, created: version.created };
}

/** The spec MLflow's metadata implies; {} when the file does not load (validation then says why). */
async function derivedSpec(bytes: Uint8Array, signature: MlflowSignature | undefined, example: Record<string, unknown> | undefined) {
  let session;
  try {
    session = await createSession(bytes, 1);
  } catch {
    return {};
  }
  try {
    return deriveSpec(readMetadata(session), signature, example);
  } finally {
    await session.release();
  }
}
