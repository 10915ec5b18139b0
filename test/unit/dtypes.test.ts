// float16 conversion against numpy's (the bits numpy 2.2 gives `np.array(v, dtype=np.float16)`
// for each value: round half to even, subnormals, overflow of the rounding, signed zero), and
// the range checks every path shares.
import { describe, expect, it } from 'vitest';
import { allocate, fromFloat16Bits, storeValue, toFloat16Bits } from '../../src/registry/dtypes.ts';

const NUMPY: Array<[number, number]> = [
  [0, 0],
  [-0, 32768],
  [1, 15360],
  [-1, 48128],
  [0.1, 11878],
  [1 / 3, 13653],
  [65504, 31743],
  [65519.99, 31743],
  [6e-8, 1],
  [5.96e-8, 1],
  [2.98e-8, 0],
  [1e-5, 168],
  [3.14159, 16968],
  [1000.7, 25553],
  [0.000061, 1023],
  [12345.678, 29191],
  [-2.5e-6, 32810],
];

describe('float16', () => {
  it.each(NUMPY)('%s has the bits numpy gives it (%s)', (value, bits) => {
    expect(toFloat16Bits(value)).toBe(bits);
  });

  it('reads back what it writes for values float16 holds exactly', () => {
    for (const value of [0.5, -2.25, 65504, 1000, 2 ** -24, -(2 ** -14)]) expect(fromFloat16Bits(toFloat16Bits(value))).toBe(value);
  });
});

describe('storeValue ranges', () => {
  it.each([
    ['int8', -129, 'is out of range for int8 (-128 to 127), got -129'],
    ['uint16', 65536, 'is out of range for uint16 (0 to 65535), got 65536'],
    ['uint64', 2 ** 53, 'is out of range for uint64 (0 to 9007199254740991), got 9007199254740992'],
    ['int64', -(2 ** 53), 'is out of range for int64 (-9007199254740991 to 9007199254740991), got -9007199254740992'],
    ['float32', 1e39, 'is out of range for float32 (±3.4028234663852886e+38), got 1e+39'],
    ['float16', -65505, 'is out of range for float16 (±65504), got -65505'],
    ['int32', '7', 'must be an integer, got "7"'],
  ] as const)('%s refuses %s', (dtype, value, reason) => {
    expect(storeValue(allocate(dtype, 1), 0, dtype, value)).toBe(reason);
  });

  it('stores the edges of each integer type', () => {
    const buffer = allocate('uint32', 2);
    expect(storeValue(buffer, 0, 'uint32', 4294967295)).toBeUndefined();
    expect(storeValue(buffer, 1, 'uint32', 0)).toBeUndefined();
    expect([...(buffer as Uint32Array)]).toEqual([4294967295, 0]);
  });
});
