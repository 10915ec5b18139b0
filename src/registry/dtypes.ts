// The element types mldeploy feeds to models, and the one check of a JSON value against
// them. The feature mapper (records) and the v2 protocol (raw tensors) both write through
// `storeValue`, so a value is accepted or refused with the same reason on every path.
import type { Dtype } from './spec.ts';

export type TensorBuffer = Float32Array | Float64Array | BigInt64Array | Uint8Array | string[];

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'missing';
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'string') return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  return `a ${Array.isArray(value) ? 'list' : typeof value}`;
}

export function allocate(dtype: Dtype, size: number): TensorBuffer {
  switch (dtype) {
    case 'float32':
      return new Float32Array(size);
    case 'float64':
      return new Float64Array(size);
    case 'int64':
      return new BigInt64Array(size);
    case 'bool':
      return new Uint8Array(size);
    case 'string':
      return new Array<string>(size);
  }
}

/** The first `size` elements (a view for typed arrays). */
export function trim(buffer: TensorBuffer, size: number): TensorBuffer {
  if (buffer.length === size) return buffer;
  return Array.isArray(buffer) ? buffer.slice(0, size) : buffer.subarray(0, size);
}

/**
 * Writes `value` at `at` as `dtype`. Returns undefined when it fits, else why not, worded to
 * follow the field's name ("is missing", "must be an integer, got 1.5"). A record's field
 * may give a string input as a number; a raw (strict) tensor may not.
 */
export function storeValue(buffer: TensorBuffer, at: number, dtype: Dtype, value: unknown, strict = false): string | undefined {
  if (value === null || value === undefined) return value === undefined ? 'is missing' : 'is null';
  switch (dtype) {
    case 'float32':
    case 'float64':
      if (typeof value !== 'number' || !Number.isFinite(value)) return `must be a finite number, got ${describeValue(value)}`;
      (buffer as Float64Array)[at] = value;
      return undefined;
    case 'int64':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) return `must be an integer, got ${describeValue(value)}`;
      (buffer as BigInt64Array)[at] = BigInt(value);
      return undefined;
    case 'bool':
      if (typeof value !== 'boolean') return `must be true or false, got ${describeValue(value)}`;
      (buffer as Uint8Array)[at] = value ? 1 : 0;
      return undefined;
    case 'string':
      if (typeof value === 'string') (buffer as string[])[at] = value;
      else if (!strict && typeof value === 'number' && Number.isFinite(value)) (buffer as string[])[at] = String(value);
      else return `must be a string, got ${describeValue(value)}`;
      return undefined;
  }
}
