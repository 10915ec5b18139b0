// The batch chunk's drift accounting from columns (DriftAccumulator.addColumns) against the
// per-record path (add of each row view, as monitor runs count and as chunks counted before):
// the same counts, sums and errors for every kind of column and feature, odd values included
// (NULLs with stale text behind them, NaN, ±Infinity, -0, numbers outside the pair range,
// values on bin edges, derived features the columns cannot give); and the bin lookup equals
// numericBin.
import { describe, expect, it } from 'vitest';
import { ColumnBatch, rowViews, type ColumnPlan } from '../../src/batch/columns.ts';
import { FeatureMapper } from '../../src/registry/features.ts';
import type { ResolvedSpec } from '../../src/registry/spec.ts';
import type { ModelMetadata } from '../../src/registry/metadata.ts';
import type { LoadedModel } from '../../src/registry/runtime.ts';
import { FeatureReader } from '../../src/monitoring/features.ts';
import { numericBin, ProfileBuilder } from '../../src/monitoring/profile.ts';
import { BinLookup, binOf, DriftAccumulator } from '../../src/monitoring/histograms.ts';

const PLANS: ColumnPlan[] = [
  { name: 'id', kind: 'key', select: 'id' },
  { name: 'a', kind: 'float', select: 'a' },
  { name: 'b', kind: 'float', select: 'b' },
  { name: 'city', kind: 'text', select: 'city' },
  { name: 'x', kind: 'float', select: 'x' },
  { name: 'num_text', kind: 'text', select: 'num_text' },
  { name: 'flag', kind: 'bool', select: 'flag' },
  { name: 't', kind: 'timestamp', select: 't' },
  { name: 'catnum', kind: 'float', select: 'catnum' },
  { name: 'actual', kind: 'float', select: 'actual' },
];

const spec: ResolvedSpec = {
  derived: [
    { name: 'AB', op: 'concat', fields: ['a', 'b'], separator: '_' },
    { name: 'CA', op: 'concat', fields: ['city', 'a'], separator: '-' },
    { name: 'AA', op: 'concat', fields: ['a', 'a'], separator: '' },
    { name: 'H', op: 'hour', field: 't' },
    { name: 'HC', op: 'concat', fields: ['H', 'city'], separator: '/' },
  ],
  inputs: [
    { name: 'AB', dtype: 'string', fields: ['AB'] },
    { name: 'CA', dtype: 'string', fields: ['CA'] },
    { name: 'AA', dtype: 'string', fields: ['AA'] },
    { name: 'x', dtype: 'float32', fields: ['x', 'num_text'] },
    { name: 'city', dtype: 'string', fields: ['city'] },
    { name: 'flag', dtype: 'bool', fields: ['flag'] },
    { name: 'H', dtype: 'int64', fields: ['H'] },
    { name: 'HC', dtype: 'string', fields: ['HC'] },
    { name: 'catnum', dtype: 'string', fields: ['catnum'] },
    { name: 'missing_column', dtype: 'float32', fields: ['missing_column'] },
  ],
  output: { name: 'y', index: 0 },
};

const model = { name: 'histograms-test', version: 1, spec, mapper: new FeatureMapper(spec, { inputs: [] } as unknown as ModelMetadata) } as unknown as LoadedModel;

let seed = 12345;
const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];

const ZONES = [0, 1, 2, 3, 4, 5, 6, -0, 7.5, -3, 40_000, NaN, Infinity];
const CITIES = ['north', 'south', 'east', '', '7', 'a-b'];
const X = [0.5, 1, 1.5, 2, 2.5, 3, 4, 10, -1, NaN, -Infinity, 1e300];
const NUM_TEXT = ['1', ' 2.5 ', '', 'abc', '3e1', '-0'];
const CATNUM = [0, -0, 1, 1.5, NaN, Infinity, 1e21, 7];
const PG_EPOCH_MS = Date.UTC(2000, 0, 1);

/** One sub-batch of n rows with odd values and NULLs; the same batch object each time, as a chunk reuses it. */
function fill(batch: ColumnBatch, n: number): void {
  for (let i = 0; i < n; i++) {
    for (const c of batch.columns) {
      const isNull = c.plan.name !== 'id' && random() < 0.06;
      c.nulls[i] = isNull ? 1 : 0;
      if (isNull) continue; // copyColumns leaves the slot as it was
      switch (c.plan.name) {
        case 'id':
          c.rawView.setBigInt64(i * 8, BigInt(i + 1));
          break;
        case 'a':
        case 'b':
          c.f64[i] = random() < 0.85 ? Math.floor(random() * 7) : pick(ZONES);
          break;
        case 'city':
          c.text[i] = pick(CITIES);
          break;
        case 'x':
          c.f64[i] = pick(X);
          break;
        case 'num_text':
          c.text[i] = pick(NUM_TEXT);
          break;
        case 'flag':
          c.u8[i] = random() < 0.3 ? 1 : 0;
          break;
        case 't':
          c.rawView.setBigInt64(i * 8, BigInt(Date.UTC(2024, 0, 1, Math.floor(random() * 24)) - PG_EPOCH_MS) * 1000n);
          break;
        case 'catnum':
          c.f64[i] = pick(CATNUM);
          break;
        case 'actual':
          c.f64[i] = random() < 0.1 ? NaN : random() * 20;
          break;
      }
    }
  }
  batch.length = n;
}

describe('drift accounting from columns', () => {
  it('counts every kind of feature exactly as the per-record path does', () => {
    const batch = new ColumnBatch(PLANS, 1000);
    const holder = { batch };
    const views = rowViews(PLANS, holder, 1000);
    const predictionOf = (i: number) => (i % 11 === 0 ? null : ((i * 7919) % 100) / 5);

    // The reference from the same generator, read as a profile is built.
    const reader = new FeatureReader(model);
    const builder = new ProfileBuilder(reader.features, true);
    const values: unknown[] = [];
    fill(batch, 1000);
    for (let i = 0; i < 1000; i++) {
      reader.read(views[i], values);
      builder.add(values, predictionOf(i), batch.columns[9].nulls[i] ? null : batch.columns[9].f64[i]);
    }
    const reference = builder.build('test');
    const ab = reference.features.find((f) => f.name === 'AB')!;
    expect(ab.kind === 'categorical' && ab.categories.includes('0_0')).toBe(true);
    expect(reference.features.find((f) => f.name === 'x')!.kind).toBe('numeric');

    const byColumns = new DriftAccumulator(reference, model);
    const byRecord = new DriftAccumulator(reference, model);
    for (const n of [1000, 1000, 377, 1000, 1]) {
      fill(batch, n);
      const predictions = Array.from({ length: n }, (_, i) => predictionOf(i + n));
      const actual = batch.column('actual');
      byColumns.addColumns(batch, views, predictions, actual);
      for (let i = 0; i < n; i++) byRecord.add(views[i], predictions[i], actual.nulls[i] ? null : actual.f64[i]);
    }
    const result = byColumns.result();
    expect(result).toEqual(byRecord.result());
    expect(result.rows).toBe(3378);
    expect(result.features.every((f) => f.missing > 0)).toBe(true);
    expect(result.errorRows).toBeGreaterThan(0);
    // Row views read a NULL text as null, not the text an earlier row left in its slot.
    fill(batch, 1000);
    const city = batch.column('city');
    const i = city.nulls.indexOf(1);
    expect(i).toBeGreaterThanOrEqual(0);
    expect(views[i].city).toBeNull();
  });

  it('the bin lookup finds numericBin’s bin for any value, edges included', () => {
    const cases: number[][] = [[], [5], [1, 2], [0.1, 0.2, 0.25, 3, 3.0000001, 40, 1e6], [-5, -1e-9, 0, 1e-9, 7]];
    for (const edges of cases) {
      const lookup = new BinLookup(edges);
      const probes = [...edges, ...edges.map((e) => e - 1e-12), ...edges.map((e) => e + 1e-12), -Infinity, Infinity, -1e300, 1e300, 0, -0];
      for (let k = 0; k < 2000; k++) probes.push((random() - 0.3) * 10 ** Math.floor(random() * 8 - 2));
      for (const v of probes) expect(binOf(lookup, v)).toBe(numericBin(edges, v));
    }
  });
});
