// Feature mapping: records → tensors, derived features, and per-record errors.
import { describe, expect, it } from 'vitest';
import { FeatureMapper, readPredictions } from '../../src/registry/features.ts';
import { resolveSpec, type ModelMetadata } from '../../src/registry/metadata.ts';
import { parseSpec } from '../../src/registry/spec.ts';
import ort from 'onnxruntime-node';

const tripMeta: ModelMetadata = {
  inputs: [
    { name: 'PU_DO', type: 'string', shape: ['', 1] },
    { name: 'trip_distance', type: 'float32', shape: ['', 1] },
  ],
  outputs: [{ name: 'variable', type: 'float32', shape: ['', 1] }],
};
const tripSpec = resolveSpec(
  parseSpec({
    derived: [{ name: 'PU_DO', op: 'concat', fields: ['PULocationID', 'DOLocationID'] }],
    inputs: [
      { name: 'PU_DO', dtype: 'string', fields: ['PU_DO'] },
      { name: 'trip_distance', dtype: 'float32', fields: ['trip_distance'] },
    ],
    output: { clip: { min: 1, max: 180 } },
  }),
  tripMeta,
);

describe('FeatureMapper', () => {
  it("builds the course's PU_DO feature and [N,1] columns", () => {
    const mapper = new FeatureMapper(tripSpec, tripMeta);
    const { feeds, accepted, errors } = mapper.map([
      { PULocationID: 10, DOLocationID: 50, trip_distance: 40 },
      { PULocationID: '7', DOLocationID: 8, trip_distance: 1.5 },
    ]);
    expect(errors).toEqual([]);
    expect(accepted).toEqual([0, 1]);
    expect(feeds.PU_DO.dims).toEqual([2, 1]);
    expect(feeds.PU_DO.data).toEqual(['10_50', '7_8']);
    expect(Array.from(feeds.trip_distance.data as Float32Array)).toEqual([40, 1.5]);
    expect(mapper.requiredFields().sort()).toEqual(['DOLocationID', 'PULocationID', 'trip_distance']);
  });

  it.each([
    [{ PULocationID: 10, DOLocationID: 50 }, 'trip_distance is missing'],
    [{ PULocationID: 10, DOLocationID: 50, trip_distance: null }, 'trip_distance is null'],
    [{ PULocationID: 10, DOLocationID: 50, trip_distance: '40' }, 'trip_distance must be a finite number, got "40"'],
    [{ PULocationID: 10, DOLocationID: 50, trip_distance: NaN }, 'trip_distance must be a finite number, got NaN'],
    [{ PULocationID: 10, DOLocationID: 50, trip_distance: Infinity }, 'trip_distance must be a finite number, got Infinity'],
    [{ DOLocationID: 50, trip_distance: 4 }, 'PULocationID is missing'],
    [{ PULocationID: { a: 1 }, DOLocationID: 50, trip_distance: 4 }, 'PULocationID must be a string or a finite number, got a object'],
    [[1, 2, 3], '(record) must be a JSON object'],
  ])('rejects %j with "%s", and keeps the good records around it', (bad, reason) => {
    const mapper = new FeatureMapper(tripSpec, tripMeta);
    const good = { PULocationID: 1, DOLocationID: 2, trip_distance: 3 };
    const { feeds, accepted, errors } = mapper.map([good, bad as never, good]);
    expect(errors).toEqual([{ index: 1, field: expect.any(String), reason }]);
    expect(accepted).toEqual([0, 2]);
    expect(feeds.trip_distance.dims).toEqual([2, 1]);
  });

  it('maps an ordered feature list into one [N,k] matrix, and every dtype', () => {
    const meta: ModelMetadata = {
      inputs: [
        { name: 'x', type: 'float64', shape: ['N', 3] },
        { name: 'i', type: 'int64', shape: ['N', 1] },
        { name: 'b', type: 'bool', shape: ['N', 1] },
        { name: 'v', type: 'float32', shape: ['N'] },
      ],
      outputs: [{ name: 'y', type: 'float32', shape: ['N', 2] }],
    };
    const spec = resolveSpec(
      parseSpec({
        inputs: [
          { name: 'x', dtype: 'float64', fields: ['c', 'a', 'b'] },
          { name: 'i', dtype: 'int64', fields: ['n'] },
          { name: 'b', dtype: 'bool', fields: ['flag'] },
          { name: 'v', dtype: 'float32', fields: ['v'] },
        ],
        output: { name: 'y', index: 1 },
      }),
      meta,
    );
    const { feeds, errors } = new FeatureMapper(spec, meta).map([
      { a: 1, b: 2, c: 3, n: 7, flag: true, v: 0.5 },
      { a: 4, b: 5, c: 6, n: 1.5, flag: true, v: 0.5 },
      { a: 4, b: 5, c: 6, n: -2, flag: 'yes', v: 0.5 },
    ]);
    expect(errors.map((e) => e.reason)).toEqual(['n must be an integer, got 1.5', 'flag must be true or false, got "yes"']);
    expect(feeds.x.dims).toEqual([1, 3]);
    expect(Array.from(feeds.x.data as Float64Array)).toEqual([3, 1, 2]);
    expect(Array.from(feeds.i.data as BigInt64Array)).toEqual([7n]);
    expect(Array.from(feeds.b.data as Uint8Array)).toEqual([1]);
    expect(feeds.v.dims).toEqual([1]);
  });

  it('derives the hour and weekday of a timestamp in UTC', () => {
    const meta: ModelMetadata = { inputs: [{ name: 'hw', type: 'int64', shape: ['N', 2] }], outputs: [{ name: 'y', type: 'float32', shape: ['N', 1] }] };
    const spec = resolveSpec(
      parseSpec({
        derived: [
          { name: 'h', op: 'hour', field: 't' },
          { name: 'w', op: 'weekday', field: 't' },
        ],
        inputs: [{ name: 'hw', dtype: 'int64', fields: ['h', 'w'] }],
      }),
      meta,
    );
    const { feeds, errors } = new FeatureMapper(spec, meta).map([
      { t: '2024-01-01 13:05:00' }, // a Monday
      { t: new Date('2024-01-07T23:59:59Z') }, // a Sunday
      { t: '2024-01-03T01:00:00+02:00' },
      { t: '2024-01-03 01:00:00.25-03' }, // PostgreSQL's text for timestamptz
      { t: 'yesterday' },
    ]);
    expect(Array.from(feeds.hw.data as BigInt64Array)).toEqual([13n, 0n, 23n, 6n, 23n, 1n, 4n, 2n]);
    expect(errors.map((e) => e.reason)).toEqual(['t must be a timestamp, got "yesterday"']);
  });
});

describe('readPredictions', () => {
  it('reads the chosen column and clips it', () => {
    const out = new ort.Tensor('float32', Float32Array.from([0.2, 500, -3]), [3, 1]);
    expect(readPredictions(tripSpec, { variable: out })).toEqual([1, 180, 1]);
  });
});
