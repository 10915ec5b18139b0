// The data plane's dynamic batching: concurrent single records share one call, and each
// caller gets its own answer or its own error; large requests run in slices.
import { describe, expect, it } from 'vitest';
import type { FeatureRecord } from '../../src/registry/features.ts';
import type { LoadedModel, PredictResult } from '../../src/registry/runtime.ts';
import ort from 'onnxruntime-node';
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

/** A stand-in session: output y = 2x over an [N, 1] float tensor; throws when x holds a negative value; busy for msPerRow per row. */
function fakeTensorModel(msPerRow = 0) {
  const runs: number[] = [];
  const model = {
    name: 'fake-tensors',
    version: 1,
    metadata: { inputs: [{ name: 'x', type: 'float32', shape: ['N', 1] }], outputs: [{ name: 'y', type: 'float32', shape: ['N', 1] }] },
    session: {
      async run(feeds: Record<string, ort.Tensor>) {
        const x = feeds.x.data as Float32Array;
        runs.push(feeds.x.dims[0]);
        const busyUntil = performance.now() + msPerRow * x.length;
        while (performance.now() < busyUntil);
        if (x.some((v) => v < 0)) throw new Error('negative input');
        return {
          y: new ort.Tensor(
            'float32',
            x.map((v) => v * 2),
            feeds.x.dims,
          ),
        };
      },
    },
  };
  return { model: model as unknown as LoadedModel, runs };
}

const tensorRequest = (values: number[]) => ({ feeds: { x: new ort.Tensor('float32', Float32Array.from(values), [values.length, 1]) }, rows: values.length, outputs: ['y'] });

describe('DataPlane.tensors (v2)', () => {
  it('runs concurrent small requests in one call and gives each its own rows', async () => {
    const { model, runs } = fakeTensorModel();
    const plane = new DataPlane({ lane: 'web', maxBatch: 64, maxDelayUs: 0 });
    const outputs = await Promise.all([[1], [2, 3], [4]].map((v) => plane.tensors(model, tensorRequest(v))));
    expect(runs).toEqual([4]);
    expect(outputs.map((o) => Array.from(o.y.data as Float32Array))).toEqual([[2], [4, 6], [8]]);
    expect(outputs[1].y.dims).toEqual([2, 1]);
  });

  it('fails only the request whose data the model rejects', async () => {
    const { model } = fakeTensorModel();
    const plane = new DataPlane({ lane: 'web', maxBatch: 64, maxDelayUs: 0 });
    const settled = await Promise.allSettled([[1], [-1], [3]].map((v) => plane.tensors(model, tensorRequest(v))));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(Array.from((settled[2] as PromiseFulfilledResult<Record<string, ort.Tensor>>).value.y.data as Float32Array)).toEqual([6]);
  });

  it('slices a large request and joins the outputs in order', async () => {
    const { model, runs } = fakeTensorModel();
    const plane = new DataPlane({ lane: 'web', maxBatch: 1, maxDelayUs: 0 });
    const values = Array.from({ length: SLICE_RECORDS * 2 + 5 }, (_, i) => i);
    const { y } = await plane.tensors(model, tensorRequest(values));
    expect(runs).toEqual([SLICE_RECORDS, SLICE_RECORDS, 5]);
    expect(Array.from(y.data as Float32Array)).toEqual(values.map((v) => v * 2));
  });

  it("sizes later slices by the model's measured cost per row, never below SLICE_RECORDS", async () => {
    const values = Array.from({ length: SLICE_RECORDS * 8 }, (_, i) => i);
    // Cheap: the first request measures it, the next one runs in one call.
    const cheap = fakeTensorModel();
    const plane = new DataPlane({ lane: 'web', maxBatch: 1, maxDelayUs: 0, sliceBudgetMs: 50 });
    await plane.tensors(cheap.model, tensorRequest(values));
    const { y } = await plane.tensors(cheap.model, tensorRequest(values));
    expect(cheap.runs).toEqual([...Array(8).fill(SLICE_RECORDS), SLICE_RECORDS * 8]);
    expect(Array.from(y.data as Float32Array)).toEqual(values.map((v) => v * 2));
    // Costly: 256 rows take 2.56 ms, over a 1 ms budget, so slices stay at SLICE_RECORDS.
    const costly = fakeTensorModel(0.01);
    const strict = new DataPlane({ lane: 'web', maxBatch: 1, maxDelayUs: 0, sliceBudgetMs: 1 });
    await strict.tensors(costly.model, tensorRequest(values.slice(0, SLICE_RECORDS * 2)));
    await strict.tensors(costly.model, tensorRequest(values.slice(0, SLICE_RECORDS * 2)));
    expect(costly.runs).toEqual(Array(4).fill(SLICE_RECORDS));
  });
});
