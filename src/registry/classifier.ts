// Classifiers: a label output and a probabilities output (what skl2onnx exports with
// zipmap=False, onnxmltools for XGBoost and LightGBM classifiers). Recognises them, finds the
// class labels in the ONNX graph, and reads their outputs into a PredictResult's classifier
// fields (src/registry/runtime.ts has the contract).
import type ort from 'onnxruntime-node';
import type { TensorInfo } from './metadata.ts';
import type { ClassLabel } from './spec.ts';

/** The two outputs of a classifier, and its class labels in the column order of `probabilities`. */
export interface ClassifierOutputs {
  label: string;
  probabilities: string;
  /** Undefined until known: then the columns are numbered 0..k-1 when the model runs. */
  classes?: ClassLabel[];
}

const LABEL_TYPES = new Set(['int64', 'int32', 'string']);
const PROBABILITY_TYPES = new Set(['float32', 'float64']);

/** A tensor with one value per record: [N] or [N, 1]. */
function perRecord(info: TensorInfo): boolean {
  return info.shape.length === 1 || (info.shape.length === 2 && info.shape[1] === 1);
}

export function isLabelOutput(info: TensorInfo): boolean {
  return LABEL_TYPES.has(info.type) && perRecord(info);
}

export function isProbabilitiesOutput(info: TensorInfo): boolean {
  return PROBABILITY_TYPES.has(info.type) && info.shape.length === 2;
}

/** The label and probabilities outputs when the model has exactly those two (a classifier), else undefined. */
export function detectClassifier(outputs: readonly TensorInfo[]): { label: string; probabilities: string } | undefined {
  if (outputs.length !== 2) return undefined;
  const label = outputs.find(isLabelOutput);
  const probabilities = outputs.find((o) => o !== label && isProbabilitiesOutput(o));
  return label && probabilities ? { label: label.name, probabilities: probabilities.name } : undefined;
}

// ---------------------------------------------------------------------------------------
// Class labels from the ONNX graph: the classlabels_* attribute of its ai.onnx.ml classifier
// node (LinearClassifier, TreeEnsembleClassifier, SVMClassifier). A minimal protobuf walk:
// ModelProto.graph (7) → GraphProto.node (1) → NodeProto.op_type (4), attribute (5) →
// AttributeProto.name (1), ints (8), strings (9).

const CLASSIFIER_OPS = new Set(['LinearClassifier', 'TreeEnsembleClassifier', 'SVMClassifier']);
const CLASS_ATTRIBUTES = new Set(['classlabels_ints', 'classlabels_int64s', 'classlabels_strings']);

class Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    start = 0,
    readonly end = bytes.length,
  ) {
    this.pos = start;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const b = this.bytes[this.pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  }
  /** Fields of this message: [field number, wire type, start, end] (end is the value's end for length-delimited ones). */
  *fields(): Generator<{ field: number; wire: number; start: number; end: number }> {
    while (this.pos < this.end) {
      const key = Number(this.varint());
      const field = key >>> 3;
      const wire = key & 7;
      const start = this.pos;
      if (wire === 0) this.varint();
      else if (wire === 1) this.pos += 8;
      else if (wire === 5) this.pos += 4;
      else if (wire === 2) {
        const length = Number(this.varint());
        const from = this.pos;
        this.pos += length;
        yield { field, wire, start: from, end: this.pos };
        continue;
      } else throw new Error(`unsupported wire type ${wire}`);
      if (this.pos > this.end) throw new Error('truncated field');
      yield { field, wire, start, end: this.pos };
    }
  }
}

const text = new TextDecoder();

function readAttribute(bytes: Uint8Array, start: number, end: number): { name: string; values: ClassLabel[] } {
  let name = '';
  const values: ClassLabel[] = [];
  const r = new Reader(bytes, start, end);
  for (const f of r.fields()) {
    if (f.field === 1 && f.wire === 2) name = text.decode(bytes.subarray(f.start, f.end));
    else if (f.field === 9 && f.wire === 2) values.push(text.decode(bytes.subarray(f.start, f.end)));
    else if (f.field === 8 && f.wire === 0) values.push(Number(BigInt.asIntN(64, new Reader(bytes, f.start, f.end).varint())));
    else if (f.field === 8 && f.wire === 2) {
      const packed = new Reader(bytes, f.start, f.end);
      while (packed.pos < packed.end) values.push(Number(BigInt.asIntN(64, packed.varint())));
    }
  }
  return { name, values };
}

function nodeClasses(bytes: Uint8Array, start: number, end: number): ClassLabel[] | undefined {
  let op = '';
  const attributes: Array<{ name: string; values: ClassLabel[] }> = [];
  for (const f of new Reader(bytes, start, end).fields()) {
    if (f.field === 4 && f.wire === 2) op = text.decode(bytes.subarray(f.start, f.end));
    else if (f.field === 5 && f.wire === 2) attributes.push(readAttribute(bytes, f.start, f.end));
  }
  if (!CLASSIFIER_OPS.has(op)) return undefined;
  return attributes.find((a) => CLASS_ATTRIBUTES.has(a.name) && a.values.length > 0)?.values;
}

/**
 * The class labels of the model's classifier node, in the column order of its probabilities;
 * undefined when there is no such node, several disagree, or the bytes cannot be read.
 */
export function classLabelsOf(model: Uint8Array): ClassLabel[] | undefined {
  try {
    const found: ClassLabel[][] = [];
    for (const m of new Reader(model).fields()) {
      if (m.field !== 7 || m.wire !== 2) continue;
      for (const g of new Reader(model, m.start, m.end).fields()) {
        if (g.field !== 1 || g.wire !== 2) continue;
        const classes = nodeClasses(model, g.start, g.end);
        if (classes) found.push(classes);
      }
    }
    if (found.length === 0) return undefined;
    const first = JSON.stringify(found[0]);
    return found.every((c) => JSON.stringify(c) === first) ? found[0] : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Reading a classifier's outputs

export interface ClassifierRows {
  classes: ClassLabel[];
  /** One per scored row. */
  labels: ClassLabel[];
  /** rows × classes.length, row-major. */
  probabilities: Float32Array;
  /** Per scored row: why it has no usable answer (a label outside the classes, a non-finite probability), else undefined. */
  problems: Array<string | undefined>;
}

/** Reads the label and probabilities of `rows` scored rows. Throws when the probabilities' width disagrees with the classes. */
export function readClassifier(outputs: Record<string, ort.Tensor>, spec: ClassifierOutputs, rows: number): ClassifierRows {
  const labelTensor = outputs[spec.label];
  const probTensor = outputs[spec.probabilities];
  const width = rows > 0 ? probTensor.size / rows : (spec.classes?.length ?? 0);
  const classes = spec.classes ?? Array.from({ length: width }, (_, i) => i);
  if (rows > 0 && width !== classes.length) {
    throw new Error(`the model's output ${spec.probabilities} has ${width} column(s), but the version has ${classes.length} class label(s)`);
  }
  const raw = probTensor.data as Float32Array | Float64Array;
  const probabilities = raw instanceof Float32Array ? raw.slice(0, rows * width) : Float32Array.from(raw.subarray(0, rows * width));
  const labelData = labelTensor.data as ArrayLike<bigint | number | string>;
  const labelStride = rows > 0 ? labelTensor.size / rows : 1;
  const known = new Set<ClassLabel>(classes);
  const labels = new Array<ClassLabel>(rows);
  const problems = new Array<string | undefined>(rows);
  for (let i = 0; i < rows; i++) {
    const value = labelData[i * labelStride];
    const label = typeof value === 'string' ? value : Number(value);
    labels[i] = label;
    if (!known.has(label)) problems[i] = `the model's label ${JSON.stringify(label)} is not one of its classes (${classes.map((c) => JSON.stringify(c)).join(', ')})`;
    for (let c = 0; c < width; c++) {
      const p = probabilities[i * width + c];
      if (!Number.isFinite(p)) {
        problems[i] = `the model's probability of class ${JSON.stringify(classes[c])} is ${p} for this record`;
        break;
      }
    }
  }
  return { classes, labels, probabilities, problems };
}

/** The number `predictions` holds for a classifier's label: the label when numeric, otherwise its position in the classes. */
export function labelNumber(label: ClassLabel, classes: readonly ClassLabel[]): number {
  return typeof label === 'number' ? label : classes.indexOf(label);
}

/** One record's probabilities keyed by class label (what responses and prediction records carry). */
export function probabilityMap(classes: readonly ClassLabel[], probabilities: ArrayLike<number>, row: number): Record<string, number> {
  const out: Record<string, number> = {};
  const base = row * classes.length;
  for (let c = 0; c < classes.length; c++) out[String(classes[c])] = probabilities[base + c];
  return out;
}
