// The element types mldeploy feeds to models and reads back (every tensor type onnxruntime-node
// takes and returns), and the one check of a JSON value against them. The feature mapper
// (records) and the v2 protocol (raw tensors, JSON or binary) all write through `storeValue`,
// so a value is accepted or refused with the same reason on every path.

/** onnxruntime-node's tensor types; the rest (bfloat16, float8, int4, complex …) are refused at registration. */
export const DTYPES = ['float32', 'float64', 'float16', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32', 'uint64', 'bool', 'string'] as const;
export type Dtype = (typeof DTYPES)[number];

export const isDtype = (type: string): type is Dtype => (DTYPES as readonly string[]).includes(type);

export type NumericBuffer = Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array | Uint32Array | BigUint64Array;
export type TensorBuffer = NumericBuffer | string[];

/** The Open Inference Protocol's name of each type. */
export const V2_DATATYPES: Record<Dtype, string> = {
  float32: 'FP32',
  float64: 'FP64',
  float16: 'FP16',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  bool: 'BOOL',
  string: 'BYTES',
};

/** v2 datatype → type. */
export const DTYPE_OF_V2: Record<string, Dtype> = Object.fromEntries(Object.entries(V2_DATATYPES).map(([dtype, v2]) => [v2, dtype as Dtype]));

/** Bytes per element of the fixed-width types (a float16 is stored as its 16 bits, in a Uint16Array). */
export const ELEMENT_BYTES: Record<Exclude<Dtype, 'string'>, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  uint8: 1,
  uint16: 2,
  uint32: 4,
  uint64: 8,
  bool: 1,
};

const ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
} as const;

/** The integer types' ranges; 64-bit ones stop at JSON's exact integers (2^53 - 1). */
const INTEGER_RANGE: Partial<Record<Dtype, readonly [number, number]>> = {
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  uint8: [0, 255],
  uint16: [0, 65535],
  uint32: [0, 4294967295],
  uint64: [0, Number.MAX_SAFE_INTEGER],
};
const FLOAT32_MAX = 3.4028234663852886e38;
const FLOAT16_MAX = 65504;

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'missing';
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'string') return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  return `a ${Array.isArray(value) ? 'list' : typeof value}`;
}

export function allocate(dtype: Dtype, size: number): TensorBuffer {
  return dtype === 'string' ? new Array<string>(size) : new ARRAYS[dtype](size);
}

/** A typed array of `dtype` over `bytes` without a copy when the bytes are aligned for it, else a copy. */
export function viewOf(dtype: Exclude<Dtype, 'string'>, bytes: Uint8Array): NumericBuffer {
  const Array_ = ARRAYS[dtype];
  const width = ELEMENT_BYTES[dtype];
  const size = bytes.byteLength / width;
  if (bytes.byteOffset % width === 0) return new Array_(bytes.buffer as ArrayBuffer, bytes.byteOffset, size);
  const out = new Array_(size);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** The first `size` elements (a view for typed arrays). */
export function trim(buffer: TensorBuffer, size: number): TensorBuffer {
  if (buffer.length === size) return buffer;
  return Array.isArray(buffer) ? buffer.slice(0, size) : buffer.subarray(0, size);
}

// float16 ⇄ number. onnxruntime-node holds float16 tensors as their bits in a Uint16Array
// where the runtime has no Float16Array (Node 20 and 22).
const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/** The float16 bits nearest to `value` (round half to even), from the double's own bits. */
export function toFloat16Bits(value: number): number {
  f64[0] = value;
  const hi = u32[1];
  const lo = u32[0];
  const sign = (hi >>> 16) & 0x8000;
  const exponent = (hi >>> 20) & 0x7ff;
  if (exponent === 0x7ff) return sign | 0x7c00 | (lo !== 0 || (hi & 0xfffff) !== 0 ? 0x200 : 0);
  const e = exponent - 1023 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  // 53-bit significand as hi (21 bits with the implicit one) and lo (32 bits).
  const mantHi = (hi & 0xfffff) | (exponent === 0 ? 0 : 0x100000);
  // Bits to drop below the half's 10 (or fewer, for subnormals) significand bits.
  const shift = 42 + (e <= 0 ? 1 - e : 0);
  if (shift > 53 + 1) return sign;
  const significand = BigInt(mantHi) * 4294967296n + BigInt(lo);
  let half = Number(significand >> BigInt(shift));
  const rest = significand & ((1n << BigInt(shift)) - 1n);
  const mid = 1n << BigInt(shift - 1);
  if (rest > mid || (rest === mid && (half & 1) === 1)) half++;
  // A normal half carries its implicit bit in the exponent field; a rounding carry moves it up.
  return e <= 0 ? sign | half : sign | ((e << 10) + (half - 0x400));
}

export function fromFloat16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** A tensor's elements as JS values: numbers for every numeric type (float16 decoded), strings for string tensors. */
export function valuesOf(type: string, data: unknown): ArrayLike<number | string | bigint> {
  if (type === 'float16' && data instanceof Uint16Array) return Array.from(data, fromFloat16Bits);
  return data as ArrayLike<number | string | bigint>;
}

/**
 * Writes `value` at `at` as `dtype`. Returns undefined when it fits, else why not, worded to
 * follow the field's name ("is missing", "must be an integer, got 1.5", "is out of range for
 * int8 (-128 to 127), got 300"). A record's field may give a string input as a number; a raw
 * (strict) tensor may not.
 */
export function storeValue(buffer: TensorBuffer, at: number, dtype: Dtype, value: unknown, strict = false): string | undefined {
  if (value === null || value === undefined) return value === undefined ? 'is missing' : 'is null';
  switch (dtype) {
    case 'float32':
    case 'float64':
    case 'float16': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return `must be a finite number, got ${describeValue(value)}`;
      const max = dtype === 'float16' ? FLOAT16_MAX : dtype === 'float32' ? FLOAT32_MAX : Infinity;
      if (Math.abs(value) > max) return `is out of range for ${dtype} (±${max}), got ${value}`;
      (buffer as Float64Array | Uint16Array)[at] = dtype === 'float16' ? toFloat16Bits(value) : value;
      return undefined;
    }
    case 'bool':
      if (typeof value !== 'boolean') return `must be true or false, got ${describeValue(value)}`;
      (buffer as Uint8Array)[at] = value ? 1 : 0;
      return undefined;
    case 'string':
      if (typeof value === 'string') (buffer as string[])[at] = value;
      else if (!strict && typeof value === 'number' && Number.isFinite(value)) (buffer as string[])[at] = String(value);
      else return `must be a string, got ${describeValue(value)}`;
      return undefined;
    default: {
      const [min, max] = INTEGER_RANGE[dtype]!;
      if (typeof value !== 'number' || !Number.isInteger(value)) return `must be an integer, got ${describeValue(value)}`;
      if (value < min || value > max) return `is out of range for ${dtype} (${min} to ${max}), got ${value}`;
      if (dtype === 'int64' || dtype === 'uint64') (buffer as BigInt64Array)[at] = BigInt(value);
      else (buffer as Int32Array)[at] = value;
      return undefined;
    }
  }
}

/** ONNX's element types onnxruntime-node has no tensor for, by their TensorProto number. */
const ONNX_UNSUPPORTED: Record<number, string> = {
  14: 'complex64',
  15: 'complex128',
  16: 'bfloat16',
  17: 'float8e4m3fn',
  18: 'float8e4m3fnuz',
  19: 'float8e5m2',
  20: 'float8e5m2fnuz',
  21: 'uint4',
  22: 'int4',
  23: 'float4e2m1',
  24: 'float8e8m0',
  25: 'uint2',
  26: 'int2',
};

/**
 * onnxruntime-node refuses a graph whose inputs or outputs have a type it has no tensor for
 * with "Unsupported data type: <number>"; this names the type. Undefined for other errors.
 */
export function unsupportedTypeMessage(message: string): string | undefined {
  const match = /Unsupported data type: (\d+)/.exec(message);
  if (!match) return undefined;
  const code = Number(match[1]);
  const type = ONNX_UNSUPPORTED[code] ?? `ONNX element type ${code}`;
  return `a model input or output has type ${type}${ONNX_UNSUPPORTED[code] ? ` (ONNX element type ${code})` : ''}, which onnxruntime-node cannot feed or return; it handles ${DTYPES.join(', ')}`;
}
