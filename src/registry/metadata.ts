// What a model says about itself: its input and output tensors, read from the ONNX session.
import type { InferenceSession } from 'onnxruntime-node';
import { detectClassifier, isLabelOutput, isProbabilitiesOutput } from './classifier.ts';
import { DTYPES, SpecError, type ClassLabel, type Dtype, type FeatureSpec, type ResolvedSpec } from './spec.ts';

export interface TensorInfo {
  name: string;
  /** onnxruntime's type name (float32, int64, string, …), or 'non-tensor' for maps and sequences. */
  type: string;
  /** Dimensions; symbolic ones (the batch) are strings or -1. */
  shape: Array<number | string>;
}

export interface ModelMetadata {
  inputs: TensorInfo[];
  outputs: TensorInfo[];
}

function describe(meta: readonly InferenceSession.ValueMetadata[]): TensorInfo[] {
  return meta.map((m) => (m.isTensor ? { name: m.name, type: m.type, shape: [...m.shape] } : { name: m.name, type: 'non-tensor', shape: [] }));
}

export function readMetadata(session: InferenceSession): ModelMetadata {
  return { inputs: describe(session.inputMetadata), outputs: describe(session.outputMetadata) };
}

/** Columns a 2-D input expects, when the model fixes them; undefined when dynamic. */
export function fixedColumns(info: TensorInfo): number | undefined {
  if (info.shape.length < 2) return 1;
  const k = info.shape[1];
  return typeof k === 'number' && k > 0 ? k : undefined;
}

const UNSUPPORTED_INPUT =
  'onnxruntime-node can only feed tensors. A DictVectorizer takes a map: replace it with a OneHotEncoder ' +
  '(one input per column, as skl2onnx exports a ColumnTransformer) and export again.';
const UNSUPPORTED_OUTPUT =
  "onnxruntime-node can only return tensors. A classifier exported with ZipMap returns a sequence of maps: export it again with skl2onnx's options={id(clf): {'zipmap': False}} to get a probability tensor.";

/**
 * A classifier's outputs, when the spec names `outputs`, or names no output and the model's
 * outputs are a label tensor and a probabilities tensor. Its classes: the spec's, else the
 * graph's (`graphClasses`), else 0..k-1 when the probabilities have a fixed width k.
 */
function resolveClassifier(spec: FeatureSpec, meta: ModelMetadata, graphClasses?: ClassLabel[]): ResolvedSpec['classifier'] {
  const named = spec.outputs;
  if (named && spec.output.name !== undefined) {
    throw new SpecError(`the spec names both output (one prediction) and outputs (a classifier's label and probabilities); keep one`);
  }
  if (!named && spec.output.name !== undefined) return undefined;
  const detected = detectClassifier(meta.outputs);
  if (!named) {
    if (!detected) return undefined;
  } else if (!detected && (named.label === undefined || named.probabilities === undefined)) {
    throw new SpecError(
      `outputs: the model's outputs (${meta.outputs.map((o) => `${o.name} ${o.type}`).join(', ')}) are not a label and a probabilities tensor; name them with outputs.label and outputs.probabilities`,
    );
  }
  const label = named?.label ?? detected!.label;
  const probabilities = named?.probabilities ?? detected!.probabilities;
  const labelInfo = meta.outputs.find((o) => o.name === label);
  const probInfo = meta.outputs.find((o) => o.name === probabilities);
  const names = meta.outputs.map((o) => o.name).join(', ');
  if (!labelInfo) throw new SpecError(`outputs.label: the model has no output '${label}' (outputs: ${names})`);
  if (!probInfo) throw new SpecError(`outputs.probabilities: the model has no output '${probabilities}' (outputs: ${names})`);
  if (!isLabelOutput(labelInfo))
    throw new SpecError(`outputs.label: output '${label}' is ${labelInfo.type} [${labelInfo.shape.join(', ')}]; a label is one int64, int32 or string per record`);
  if (!isProbabilitiesOutput(probInfo))
    throw new SpecError(`outputs.probabilities: output '${probabilities}' is ${probInfo.type} [${probInfo.shape.join(', ')}]; probabilities are a float [N, classes] tensor`);
  const width = fixedColumns(probInfo);
  let classes = named?.classes ?? graphClasses;
  if (classes === undefined && width !== undefined) classes = Array.from({ length: width }, (_, i) => i);
  if (classes && width !== undefined && classes.length !== width) {
    throw new SpecError(`outputs.classes lists ${classes.length} class label(s), but output '${probabilities}' has ${width} column(s)`);
  }
  if (classes) {
    const numeric = labelInfo.type !== 'string';
    const wrong = classes.find((c) => (typeof c === 'number') !== numeric);
    if (wrong !== undefined)
      throw new SpecError(`outputs.classes: ${JSON.stringify(wrong)} is not a ${numeric ? 'number' : 'string'}, as output '${label}' (${labelInfo.type}) holds`);
  }
  return { label, probabilities, ...(classes ? { classes } : {}) };
}

/**
 * Checks that the model only uses tensors, and completes the spec against the model:
 * without inputs, each model input is fed from the record field of its own name; without
 * an output name, the first output is the prediction, unless the model is a classifier
 * (resolveClassifier).
 */
export function resolveSpec(spec: FeatureSpec, meta: ModelMetadata, graphClasses?: ClassLabel[]): ResolvedSpec {
  for (const input of meta.inputs) {
    if (input.type === 'non-tensor') throw new SpecError(`model input '${input.name}' is not a tensor. ${UNSUPPORTED_INPUT}`);
    if (!(DTYPES as readonly string[]).includes(input.type)) {
      throw new SpecError(`model input '${input.name}' has type ${input.type}; mldeploy feeds ${DTYPES.join(', ')}`);
    }
  }
  for (const output of meta.outputs) {
    if (output.type === 'non-tensor') throw new SpecError(`model output '${output.name}' is not a tensor. ${UNSUPPORTED_OUTPUT}`);
    if (!(DTYPES as readonly string[]).includes(output.type)) {
      throw new SpecError(`model output '${output.name}' has type ${output.type}; onnxruntime-node returns ${DTYPES.join(', ')}`);
    }
  }

  const inputs = spec.inputs ?? meta.inputs.map((i) => ({ name: i.name, dtype: i.type as Dtype, fields: [i.name] }));
  const specNames = new Set(inputs.map((i) => i.name));
  for (const input of meta.inputs) {
    if (!specNames.has(input.name)) throw new SpecError(`the spec does not feed model input '${input.name}'`);
  }
  for (const input of inputs) {
    const model = meta.inputs.find((m) => m.name === input.name);
    if (!model) throw new SpecError(`the spec feeds '${input.name}', which the model does not have (inputs: ${meta.inputs.map((m) => m.name).join(', ')})`);
    if (model.type !== input.dtype) throw new SpecError(`input '${input.name}': the spec says ${input.dtype}, the model wants ${model.type}`);
    const k = fixedColumns(model);
    if (k !== undefined && k !== input.fields.length) {
      throw new SpecError(`input '${input.name}' has ${k} columns, but the spec lists ${input.fields.length} field(s)`);
    }
  }

  const classifier = resolveClassifier(spec, meta, graphClasses);
  if (classifier) {
    return { derived: spec.derived, inputs, output: { name: classifier.label, index: 0 }, classifier, example: spec.example, metrics: spec.metrics };
  }

  const outputName = spec.output.name ?? meta.outputs[0]?.name;
  const output = meta.outputs.find((o) => o.name === outputName);
  if (!output) throw new SpecError(`the model has no output '${outputName}' (outputs: ${meta.outputs.map((o) => o.name).join(', ')})`);
  const k = fixedColumns(output);
  if (k !== undefined && spec.output.index >= k) throw new SpecError(`output '${output.name}' has ${k} column(s); index ${spec.output.index} is out of range`);

  return {
    derived: spec.derived,
    inputs,
    output: { name: output.name, index: spec.output.index, clip: spec.output.clip },
    example: spec.example,
    metrics: spec.metrics,
  };
}
