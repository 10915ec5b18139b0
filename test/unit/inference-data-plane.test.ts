// The data plane's dynamic batching: concurrent single records share one call, and each
// caller gets its own answer or its own error; large requests run in slices.
import { describe, expect, it } from 'vitest';
import type { FeatureRecord } from '../../src/registry/features.ts';
import type { LoadedModel, PredictResult } from '../../src/registry/runtime.ts';
import { DataPlane, SLICE_RECORDS } from '../../src/inference/data-plane.ts';

/** A stand-in model: doubles field x, rejects records without a number in x, and records its call sizes. */
function fakeModel() {
  const calls: number[] = [];
  const model = {
    name: 'fake',
    version: 1,
    async predict(records: readonly FeatureRecord[]): Promise<PredictResult> {
      calls.push(records.length);
      const predictions = records.map((r) => (typeof r.x === 'number' ? r.x * 2 : null));
      const errors = records.flatMap((r, index) => (typeof r.x === 'number' ? [] : [{ index, field: 'x', reason: 'x is missing' }]));
      return { predictions, errors };
    },
  };
  return { model: model as unknown as LoadedModel, calls };
}

describe('DataPlane', () => {
  it('scores concurrent single records in one call, each caller getting its own answer', async () => {
    const { model, calls } = fakeModel();
    const scorer = new DataPlane({ lane: 'web', maxBatch: 64, maxDelayUs: 0 });
    const outcomes = await Promise.all([1, 2, 3, undefined, 5].map((x) => scorer.one(model, x === undefined ? {} : { x })));
    expect(calls).toEqual([5]);
    expect(outcomes.map((o) => o.prediction)).toEqual([2, 4, 6, undefined, 10]);
    expect(outcomes[3].error).toMatchObject({ index: 0, field: 'x' });
  });

  it('never puts more than maxBatch records in one call', async () => {
    const { model, calls } = fakeModel();
    const scorer = new DataPlane({ lane: 'web', maxBatch: 4, maxDelayUs: 1000 });
    const outcomes = await Promise.all(Array.from({ length: 10 }, (_, x) => scorer.one(model, { x })));
    expect(calls).toEqual([4, 4, 2]);
    expect(outcomes.map((o) => o.prediction)).toEqual(Array.from({ length: 10 }, (_, x) => x * 2));
  });

  it('scores each record alone when batching is off', async () => {
    const { model, calls } = fakeModel();
    const scorer = new DataPlane({ lane: 'web', maxBatch: 1, maxDelayUs: 0 });
    await Promise.all([1, 2, 3].map((x) => scorer.one(model, { x })));
    expect(calls).toEqual([1, 1, 1]);
  });

  it('scores large requests in slices, keeping order and record positions', async () => {
    const { model, calls } = fakeModel();
    const scorer = new DataPlane({ lane: 'web', maxBatch: 64, maxDelayUs: 0 });
    const records: FeatureRecord[] = Array.from({ length: SLICE_RECORDS * 2 + 3 }, (_, x) => ({ x }));
    records[SLICE_RECORDS + 1] = {};
    const { predictions, errors } = await scorer.many(model, records);
    expect(calls).toEqual([SLICE_RECORDS, SLICE_RECORDS, 3]);
    expect(predictions[SLICE_RECORDS + 2]).toBe((SLICE_RECORDS + 2) * 2);
    expect(predictions[SLICE_RECORDS + 1]).toBeNull();
    expect(errors).toEqual([{ index: SLICE_RECORDS + 1, field: 'x', reason: 'x is missing' }]);
  });
});
