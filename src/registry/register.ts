// Registration: everything is validated before anything is stored.
import { unsupportedTypeMessage } from './dtypes.ts';
import { LoadedModel, sha256 } from './runtime.ts';
import { parseSpec, SpecError } from './spec.ts';
import type { ModelProvenance, ModelStore, ModelVersion } from './store.ts';
import { validateAlias, validateModelName } from './refs.ts';

export class RegistrationError extends Error {
  override name = 'RegistrationError';
}

export interface RegisterRequest {
  name: string;
  bytes: Uint8Array;
  spec?: unknown;
  alias?: string;
  metrics?: Record<string, number>;
  maxBytes: number;
  /** Where an imported model came from (src/mlflow/import.ts). */
  provenance?: ModelProvenance;
}

/** Loads, checks and test-runs a model; returns the spec to store. Throws RegistrationError. */
export async function validateModel(req: RegisterRequest) {
  validateModelName(req.name);
  if (req.alias) validateAlias(req.alias);
  if (req.bytes.byteLength === 0) throw new RegistrationError('the model file is empty');
  if (req.bytes.byteLength > req.maxBytes) {
    throw new RegistrationError(`the model file is ${req.bytes.byteLength} bytes; the limit is ${req.maxBytes} (MLDEPLOY_MAX_MODEL_MB)`);
  }
  const spec = parseSpec(req.spec ?? {});
  let model: LoadedModel;
  try {
    model = await LoadedModel.fromBytes(req.name, 0, req.bytes, spec, 1);
  } catch (err) {
    if (err instanceof SpecError) throw new RegistrationError(err.message);
    const unsupported = unsupportedTypeMessage((err as Error).message);
    if (unsupported) throw new RegistrationError(unsupported);
    throw new RegistrationError(`onnxruntime cannot load the file as an ONNX model: ${(err as Error).message.split('\n')[0]}`);
  }
  try {
    if (spec.example) {
      const { predictions, errors } = await model.predict([spec.example]);
      if (errors.length > 0) throw new RegistrationError(`the spec's example record is rejected: ${errors[0].reason}`);
      if (!Number.isFinite(predictions[0])) throw new RegistrationError(`the spec's example record gives a non-finite prediction (${predictions[0]})`);
    }
    // A classifier's outputs and class labels are stored with the version (recognised or read from the graph at registration).
    const { classifier } = model.spec;
    return { spec: classifier ? { ...spec, outputs: classifier } : spec, metadata: model.metadata };
  } catch (err) {
    if (err instanceof RegistrationError) throw err;
    throw new RegistrationError(`the model fails on the spec's example record: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    await model.session.release();
  }
}

export async function registerModel(store: ModelStore, req: RegisterRequest): Promise<ModelVersion & { created: boolean }> {
  const { spec, metadata } = await validateModel(req);
  const metrics = { ...(spec.metrics ?? {}), ...(req.metrics ?? {}) };
  return store.insert({ name: req.name, bytes: req.bytes, sha256: sha256(req.bytes), metadata, spec, metrics, alias: req.alias, provenance: req.provenance });
}
