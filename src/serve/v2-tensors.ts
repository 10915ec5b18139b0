// Open Inference Protocol (v2) tensors in JSON: checking request tensors against the
// model's inputs, and turning onnxruntime outputs back into JSON.
import ort from 'onnxruntime-node';
import { allocate, DTYPE_OF_V2, isDtype, storeValue, V2_DATATYPES, valuesOf } from '../registry/dtypes.ts';
import type { TensorInfo } from '../registry/metadata.ts';
import { badRequest } from './errors.ts';
import { decodeBinary } from './v2-binary.ts';

/** onnxruntime type → v2 datatype. */
export const datatypeOf = (ortType: string): string => (isDtype(ortType) ? V2_DATATYPES[ortType] : ortType.toUpperCase());

/** Symbolic dimensions (the batch) are -1 in v2 metadata. */
export const v2Shape = (info: TensorInfo): number[] => info.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1));

export interface V2InputTensor {
  name: string;
  shape: number[];
  datatype: string;
  /** Absent when the bytes come in the binary part of the body (parameters.binary_data_size). */
  data?: unknown[];
  parameters?: Record<string, unknown>;
}

export interface V2OutputTensor {
  name: string;
  shape: number[];
  datatype: string;
  data: unknown[];
}

function flatten(name: string, data: unknown[], expected: number): unknown[] {
  if (!data.some(Array.isArray)) return data;
  const flat: unknown[] = [];
  const walk = (value: unknown[], depth: number) => {
    if (depth > 32) throw badRequest(`input '${name}': data is nested too deeply`);
    for (const v of value) {
      if (Array.isArray(v)) walk(v, depth + 1);
      else flat.push(v);
      if (flat.length > expected) return;
    }
  };
  walk(data, 0);
  return flat;
}

/** The same value checks as record fields (src/registry/dtypes.ts), strictly: BYTES takes strings only. */
function fill(name: string, datatype: string, values: unknown[]): ort.Tensor['data'] {
  const dtype = DTYPE_OF_V2[datatype];
  if (!dtype) throw badRequest(`input '${name}': datatype ${datatype} is not supported`);
  const out = allocate(dtype, values.length);
  for (let i = 0; i < values.length; i++) {
    const problem = storeValue(out, i, dtype, values[i], true);
    if (problem !== undefined) throw badRequest(`input '${name}': element ${i} ${problem}`);
  }
  return out as ort.Tensor['data'];
}

/**
 * Builds the feeds for one request: every model input exactly once, with the model's
 * datatype and rank, fixed dimensions as the model declares them, and as many elements as
 * the shape says. Returns the feeds and the batch size (the first dimension).
 */
export function toFeeds(inputs: V2InputTensor[], model: TensorInfo[], maxBatch: number, binary?: Map<string, Buffer>): { feeds: Record<string, ort.Tensor>; rows: number } {
  const feeds: Record<string, ort.Tensor> = {};
  let rows: number | undefined;
  for (const input of inputs) {
    const info = model.find((m) => m.name === input.name);
    if (!info) throw badRequest(`the model has no input '${input.name}' (inputs: ${model.map((m) => m.name).join(', ')})`);
    if (feeds[input.name]) throw badRequest(`input '${input.name}' is given twice`);
    const datatype = datatypeOf(info.type);
    if (input.datatype !== datatype) throw badRequest(`input '${input.name}' has datatype ${datatype}, not ${input.datatype}`);
    const declared = v2Shape(info);
    if (input.shape.length !== declared.length)
      throw badRequest(`input '${input.name}' has shape [${declared.join(', ')}]; got rank ${input.shape.length}, not ${declared.length}`);
    input.shape.forEach((d, i) => {
      if (declared[i] !== -1 && d !== declared[i]) throw badRequest(`input '${input.name}' has shape [${declared.join(', ')}]; dimension ${i} must be ${declared[i]}, not ${d}`);
    });
    const size = input.shape.reduce((a, b) => a * b, 1);
    const batch = input.shape.length > 0 ? input.shape[0] : 1;
    if (batch > maxBatch) throw badRequest(`input '${input.name}' has ${batch} rows; at most ${maxBatch} per request`);
    if (rows !== undefined && batch !== rows) throw badRequest(`input '${input.name}' has ${batch} rows, the other inputs ${rows}`);
    rows = batch;
    const bytes = binary?.get(input.name);
    let data: ort.Tensor['data'];
    if (bytes) data = decodeBinary(input.name, DTYPE_OF_V2[datatype], bytes, size) as ort.Tensor['data'];
    else if (input.parameters?.binary_data_size !== undefined)
      throw badRequest(`input '${input.name}' has binary_data_size, but the request has no Inference-Header-Content-Length`);
    else if (input.data === undefined) throw badRequest(`input '${input.name}' has neither data nor parameters.binary_data_size`);
    else {
      const values = flatten(input.name, input.data, size);
      if (values.length !== size) throw badRequest(`input '${input.name}' with shape [${input.shape.join(', ')}] needs ${size} elements, got ${values.length}`);
      data = fill(input.name, datatype, values);
    }
    feeds[input.name] = new ort.Tensor(info.type as 'float32', data as Float32Array, input.shape);
  }
  const absent = model.filter((m) => !feeds[m.name]).map((m) => m.name);
  if (absent.length) throw badRequest(`input(s) ${absent.map((n) => `'${n}'`).join(', ')} missing`);
  return { feeds, rows: rows ?? 0 };
}

export function fromTensor(name: string, tensor: ort.Tensor): V2OutputTensor {
  const data = tensor.data;
  let values: unknown[];
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) values = Array.from(data, Number);
  else if (tensor.type === 'bool') values = Array.from(data as Uint8Array, (v) => v !== 0);
  else values = Array.from(valuesOf(tensor.type, data));
  return { name, datatype: datatypeOf(tensor.type), shape: [...tensor.dims], data: values };
}
