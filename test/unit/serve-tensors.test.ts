// v2 tensor checks against model metadata, and slicing/joining along the batch dimension.
import { describe, expect, it } from 'vitest';
import { datatypeOf, fromTensor, toFeeds, v2Shape } from '../../src/serve/v2-tensors.ts';
import { joinRows, sliceRows } from '../../src/inference/data-plane.ts';
import type { TensorInfo } from '../../src/registry/metadata.ts';
import { HttpError } from '../../src/serve/errors.ts';

const MODEL: TensorInfo[] = [
  { name: 'x', type: 'float32', shape: ['N', 3] },
  { name: 'n', type: 'int64', shape: [-1] },
  { name: 'flag', type: 'bool', shape: ['N', 1] },
  { name: 's', type: 'string', shape: ['N', 1] },
  { name: 'd', type: 'float64', shape: ['N', 1] },
];

const valid = () => [
  { name: 'x', shape: [2, 3], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6] },
  { name: 'n', shape: [2], datatype: 'INT64', data: [7, -8] },
  { name: 'flag', shape: [2, 1], datatype: 'BOOL', data: [[true], [false]] },
  { name: 's', shape: [2, 1], datatype: 'BYTES', data: ['a', 'b'] },
  { name: 'd', shape: [2, 1], datatype: 'FP64', data: [0.1, 0.2] },
];

function rejects(inputs: ReturnType<typeof valid>, message: RegExp) {
  try {
    toFeeds(inputs, MODEL, 100);
  } catch (err) {
    expect(err).toBeInstanceOf(HttpError);
    expect((err as HttpError).statusCode).toBe(400);
    expect((err as Error).message).toMatch(message);
    return;
  }
  throw new Error('expected a 400');
}

describe('v2 tensors', () => {
  it('maps onnxruntime types and symbolic shapes to v2', () => {
    expect(MODEL.map((m) => datatypeOf(m.type))).toEqual(['FP32', 'INT64', 'BOOL', 'BYTES', 'FP64']);
    expect(v2Shape(MODEL[0])).toEqual([-1, 3]);
    expect(v2Shape(MODEL[1])).toEqual([-1]);
  });

  it('builds typed feeds for FP32, FP64, INT64, BOOL and BYTES, flattening nested data', () => {
    const { feeds, rows } = toFeeds(valid(), MODEL, 100);
    expect(rows).toBe(2);
    expect(feeds.x.data).toBeInstanceOf(Float32Array);
    expect(feeds.d.data).toBeInstanceOf(Float64Array);
    expect([...(feeds.n.data as BigInt64Array)]).toEqual([7n, -8n]);
    expect([...(feeds.flag.data as Uint8Array)]).toEqual([1, 0]);
    expect(feeds.s.data).toEqual(['a', 'b']);
    expect(feeds.x.dims).toEqual([2, 3]);
  });

  it.each([
    [
      'an INT64 that is not a safe integer',
      (i: any[]) => {
        i[1].data = [1.5, 2];
      },
      /element 0 must be an integer/,
    ],
    [
      'a BOOL given as 1',
      (i: any[]) => {
        i[2].data = [1, 0];
      },
      /must be true or false/,
    ],
    [
      'a BYTES given as a number',
      (i: any[]) => {
        i[3].data = ['a', 2];
      },
      /element 1 must be a string/,
    ],
    [
      'a FP64 input sent as FP32',
      (i: any[]) => {
        i[4].datatype = 'FP32';
      },
      /datatype FP64, not FP32/,
    ],
    [
      'too many elements',
      (i: any[]) => {
        i[0].data = [1, 2, 3, 4, 5, 6, 7];
      },
      /needs 6 elements, got 7/,
    ],
    [
      'a fixed dimension changed',
      (i: any[]) => {
        i[0].shape = [3, 2];
      },
      /dimension 1 must be 3/,
    ],
    [
      'the same input twice',
      (i: any[]) => {
        i.push({ ...i[0] });
      },
      /given twice/,
    ],
    [
      'deeply nested data',
      (i: any[]) => {
        let v: unknown = 1;
        for (let k = 0; k < 40; k++) v = [v];
        i[4].data = [v, 2];
      },
      /nested too deeply/,
    ],
  ])('rejects %s', (_what, change, message) => {
    const inputs = valid();
    change(inputs);
    rejects(inputs, message);
  });

  it('refuses more rows than the limit', () => {
    expect(() => toFeeds(valid(), MODEL, 1)).toThrow(/at most 1 per request/);
  });

  it('slices rows and joins outputs back in order', () => {
    const { feeds } = toFeeds(valid(), MODEL, 100);
    const parts = [sliceRows(feeds.x, 0, 1), sliceRows(feeds.x, 1, 2)];
    expect(fromTensor('x', parts[1])).toEqual({ name: 'x', datatype: 'FP32', shape: [1, 3], data: [4, 5, 6] });
    expect(fromTensor('x', joinRows(parts))).toEqual(fromTensor('x', feeds.x));
    expect(fromTensor('s', joinRows([sliceRows(feeds.s, 0, 1), sliceRows(feeds.s, 1, 2)]))).toEqual(fromTensor('s', feeds.s));
    expect(fromTensor('n', feeds.n).data).toEqual([7, -8]);
    expect(fromTensor('flag', feeds.flag).data).toEqual([true, false]);
  });
});
