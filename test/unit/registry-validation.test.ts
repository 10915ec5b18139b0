// Spec validation against model metadata, and model references.
import { describe, expect, it } from 'vitest';
import { resolveSpec, type ModelMetadata } from '../../src/registry/metadata.ts';
import { parseSpec } from '../../src/registry/spec.ts';
import { parseModelRef } from '../../src/registry/refs.ts';

const meta: ModelMetadata = {
  inputs: [
    { name: 'city', type: 'string', shape: ['', 1] },
    { name: 'x', type: 'float32', shape: ['', 3] },
  ],
  outputs: [
    { name: 'label', type: 'int64', shape: [''] },
    { name: 'probabilities', type: 'float32', shape: ['', 2] },
  ],
};

describe('resolveSpec', () => {
  it('without a spec, feeds each input from the field of its name and predicts the first output', () => {
    const m: ModelMetadata = { inputs: [{ name: 'a', type: 'float32', shape: ['', 1] }], outputs: [{ name: 'y', type: 'float32', shape: ['', 1] }] };
    expect(resolveSpec(parseSpec({}), m)).toMatchObject({ inputs: [{ name: 'a', dtype: 'float32', fields: ['a'] }], output: { name: 'y', index: 0 } });
  });

  it.each([
    [{ inputs: [{ name: 'city', dtype: 'string', fields: ['city'] }] }, "the spec does not feed model input 'x'"],
    [
      {
        inputs: [
          { name: 'city', dtype: 'float32', fields: ['city'] },
          { name: 'x', dtype: 'float32', fields: ['a', 'b', 'c'] },
        ],
      },
      "input 'city': the spec says float32, the model wants string",
    ],
    [
      {
        inputs: [
          { name: 'city', dtype: 'string', fields: ['city'] },
          { name: 'x', dtype: 'float32', fields: ['a', 'b'] },
        ],
      },
      "input 'x' has 3 columns, but the spec lists 2 field(s)",
    ],
    [
      {
        inputs: [
          { name: 'city', dtype: 'string', fields: ['city'] },
          { name: 'x', dtype: 'float32', fields: ['a', 'b', 'c'] },
          { name: 'z', dtype: 'float32', fields: ['z'] },
        ],
      },
      "the spec feeds 'z', which the model does not have",
    ],
    [
      {
        inputs: [
          { name: 'city', dtype: 'string', fields: ['city'] },
          { name: 'x', dtype: 'float32', fields: ['a', 'b', 'c'] },
        ],
        output: { name: 'probabilities', index: 2 },
      },
      'index 2 is out of range',
    ],
    [
      {
        inputs: [
          { name: 'city', dtype: 'string', fields: ['city'] },
          { name: 'x', dtype: 'float32', fields: ['a', 'b', 'c'] },
        ],
        output: { name: 'scores' },
      },
      "the model has no output 'scores'",
    ],
  ])('rejects %j', (spec, message) => {
    expect(() => resolveSpec(parseSpec(spec), meta)).toThrow(message);
  });

  it('rejects map inputs and sequence outputs with how to re-export', () => {
    expect(() => resolveSpec(parseSpec({}), { inputs: [{ name: 'input', type: 'non-tensor', shape: [] }], outputs: [] })).toThrow(/DictVectorizer.*OneHotEncoder/);
    expect(() =>
      resolveSpec(parseSpec({}), { inputs: [{ name: 'a', type: 'float32', shape: ['', 1] }], outputs: [{ name: 'output_probability', type: 'non-tensor', shape: [] }] }),
    ).toThrow(/'zipmap': False/);
  });

  it('rejects malformed specs with the path of the problem', () => {
    expect(() => parseSpec({ inputs: [{ name: 'a', dtype: 'bfloat16', fields: ['a'] }] })).toThrow(/inputs\.0\.dtype/);
    expect(() => parseSpec({ derived: [{ name: 'h', op: 'minute', field: 't' }] })).toThrow(/derived\.0/);
    expect(() => parseSpec({ unknown: 1 })).toThrow(/invalid feature spec/);
  });
});

describe('parseModelRef', () => {
  it.each([
    ['trip-duration', { name: 'trip-duration' }],
    ['trip-duration@production', { name: 'trip-duration', alias: 'production' }],
    ['trip-duration@3', { name: 'trip-duration', version: 3 }],
    ['trip-duration@2147483647', { name: 'trip-duration', version: 2147483647 }],
  ])('%s', (ref, parsed) => expect(parseModelRef(ref)).toEqual(parsed));

  it.each(['', '@production', 'a b', "x'; DROP TABLE model_versions; --", 'name@0', 'name@1a$', 'name@', 'name@2147483648', 'name@99999999999'])('rejects %j', (ref) => {
    expect(() => parseModelRef(ref)).toThrow(/invalid/);
  });
});
