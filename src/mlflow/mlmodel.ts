// The MLmodel file: which flavor a logged model has, where its ONNX file is, its signature
// and input example. Only the onnx flavor is served; the others are refused with the steps
// that turn them into one (docs/models.md has the full recipes).
import { parse } from 'yaml';
import { MlflowError } from './client.ts';

export interface SignatureField {
  name?: string;
  type: string;
  'tensor-spec'?: { dtype: string; shape: number[] };
}

export interface MlflowSignature {
  inputs?: SignatureField[];
  outputs?: SignatureField[];
}

export interface MlModel {
  flavors: Record<string, Record<string, unknown>>;
  runId?: string;
  modelId?: string;
  signature?: MlflowSignature;
  /** The input example file and its layout, when the model was logged with one. */
  inputExample?: { file: string; type: string; orient?: string };
}

const EXPORT_STEPS: Record<string, string> = {
  sklearn:
    "pip install skl2onnx==1.20.0; in Python: from skl2onnx import to_onnx; onx = to_onnx(model, X[:1]) (for a classifier add options={'zipmap': False}); " +
    "mlflow.onnx.log_model(onx, name='model', input_example=X[:1]); then import that model",
  xgboost:
    'pip install onnxmltools==1.16.0; in Python: from onnxmltools import convert_xgboost; from onnxmltools.convert.common.data_types import FloatTensorType; ' +
    "onx = convert_xgboost(model, initial_types=[('input', FloatTensorType([None, n_features]))], target_opset=15); mlflow.onnx.log_model(onx, name='model', input_example=X[:1]); then import that model",
  lightgbm:
    'pip install onnxmltools==1.16.0; in Python: from onnxmltools import convert_lightgbm; from onnxmltools.convert.common.data_types import FloatTensorType; ' +
    "onx = convert_lightgbm(model, initial_types=[('input', FloatTensorType([None, n_features]))], target_opset=15); mlflow.onnx.log_model(onx, name='model', input_example=X[:1]); then import that model",
};

export function parseMlModel(text: string): MlModel {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new MlflowError(`the MLmodel file is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!doc || typeof doc !== 'object' || !doc.flavors || typeof doc.flavors !== 'object') throw new MlflowError('the MLmodel file lists no flavors');
  const signature = doc.signature as { inputs?: string | null; outputs?: string | null } | undefined;
  const example = doc.saved_input_example_info as { artifact_path?: string; type?: string; pandas_orient?: string } | undefined;
  return {
    flavors: doc.flavors as MlModel['flavors'],
    runId: typeof doc.run_id === 'string' ? doc.run_id : undefined,
    modelId: typeof doc.model_id === 'string' ? doc.model_id : undefined,
    signature: signature ? { inputs: parseFields(signature.inputs), outputs: parseFields(signature.outputs) } : undefined,
    inputExample: example?.artifact_path ? { file: example.artifact_path, type: example.type ?? 'dataframe', orient: example.pandas_orient } : undefined,
  };
}

function parseFields(text: string | null | undefined): SignatureField[] | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as SignatureField[];
  } catch {
    throw new MlflowError('the MLmodel file has a signature that is not valid JSON');
  }
}

/** The ONNX file of an onnx-flavored model; any other flavor is refused with the steps to export it. */
export function onnxFile(model: MlModel): string {
  const onnx = model.flavors.onnx;
  if (onnx) return typeof onnx.data === 'string' ? onnx.data : 'model.onnx';
  const names = Object.keys(model.flavors).filter((f) => f !== 'python_function');
  const convertible = names.find((f) => f in EXPORT_STEPS);
  if (convertible) {
    throw new MlflowError(
      `the MLflow model has the ${convertible} flavor; mldeploy serves ONNX models. Export it to ONNX and log that: ${EXPORT_STEPS[convertible]} (docs/models.md)`,
    );
  }
  throw new MlflowError(
    `the MLflow model has the flavor(s) ${names.join(', ') || 'python_function'}; mldeploy serves ONNX models: export the model to ONNX and log it with mlflow.onnx.log_model (docs/models.md)`,
  );
}

/** The first record of an input example saved as a pandas DataFrame (split or records orient). */
export function exampleRecord(text: string, layout: NonNullable<MlModel['inputExample']>): Record<string, unknown> | undefined {
  if (layout.type !== 'dataframe') return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined; // an unreadable example only means no derived example
  }
  if (Array.isArray(doc)) return doc[0] && typeof doc[0] === 'object' ? (doc[0] as Record<string, unknown>) : undefined;
  const split = doc as { columns?: unknown; data?: unknown };
  if (!Array.isArray(split.columns) || !Array.isArray(split.data) || !Array.isArray(split.data[0])) return undefined;
  const row = split.data[0] as unknown[];
  return Object.fromEntries((split.columns as string[]).map((c, i) => [String(c), row[i]]));
}
