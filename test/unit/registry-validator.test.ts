// Spec-only validation (what stream planning uses): a version's spec and metadata give the
// same verdicts as the model's own mapper, with no onnxruntime session, and the validator is
// built once per version.
import { describe, expect, it } from 'vitest';
import { FeatureMapper } from '../../src/registry/features.ts';
import { resolveSpec, type ModelMetadata } from '../../src/registry/metadata.ts';
import { validatorFor } from '../../src/registry/resolver.ts';
import { parseSpec } from '../../src/registry/spec.ts';

const metadata: ModelMetadata = {
  inputs: [
    { name: 'PU_DO', type: 'string', shape: ['N', 1] },
    { name: 'trip_distance', type: 'float32', shape: ['N', 1] },
    { name: 'hour', type: 'int64', shape: ['N', 1] },
  ],
  outputs: [{ name: 'variable', type: 'float32', shape: ['N', 1] }],
};
const spec = parseSpec({
  derived: [
    { name: 'PU_DO', op: 'concat', fields: ['PULocationID', 'DOLocationID'] },
    { name: 'hour', op: 'hour', field: 'pickup' },
  ],
  inputs: [
    { name: 'PU_DO', dtype: 'string', fields: ['PU_DO'] },
    { name: 'trip_distance', dtype: 'float32', fields: ['trip_distance'] },
    { name: 'hour', dtype: 'int64', fields: ['hour'] },
  ],
});
const version = { name: 'unit-validator', version: 3, sha256: 'abc', spec, metadata };

const records = [
  { PULocationID: 10, DOLocationID: 50, trip_distance: 4, pickup: '2024-01-05T10:00:00Z' },
  { PULocationID: 10, DOLocationID: 50, trip_distance: 'far', pickup: '2024-01-05T10:00:00Z' },
  { PULocationID: 10, trip_distance: 4, pickup: '2024-01-05T10:00:00Z' },
  { PULocationID: 10, DOLocationID: 50, trip_distance: 4, pickup: 'yesterday' },
  [1, 2],
  { PULocationID: 10, DOLocationID: { x: 1 }, trip_distance: null, pickup: 0 },
] as unknown as Record<string, unknown>[];

describe('validatorFor', () => {
  it("reports exactly the mapper's errors, record by record and in a batch", () => {
    const mapper = new FeatureMapper(resolveSpec(spec, metadata), metadata);
    const validator = validatorFor(version);
    expect(validator.checkMany(records)).toEqual(mapper.map(records).errors);
    records.forEach((record) => expect(validator.check(record)).toEqual(mapper.map([record]).errors.map((e) => ({ ...e, index: 0 }))));
    expect(validator.check(records[0])).toEqual([]);
    expect(validator.check(records[1])[0].reason).toBe('trip_distance must be a finite number, got "far"');
    expect(validator.requiredFields().sort()).toEqual(['DOLocationID', 'PULocationID', 'pickup', 'trip_distance']);
    expect(validator.model).toEqual({ name: 'unit-validator', version: 3 });
  });

  it('is built once per version', () => {
    expect(validatorFor(version)).toBe(validatorFor({ ...version }));
    expect(validatorFor({ ...version, version: 4 })).not.toBe(validatorFor(version));
  });
});
