// Drift statistics and histograms without a database: PSI by its formula, the tests' p-values
// at textbook points, quantile profiles, and chunk partials that merge to the one-pass counts.
import { describe, expect, it } from 'vitest';
import { chiSquareTest, ksTest, psi, upperGamma } from '../../src/monitoring/statistics.ts';
import { numericBin, ProfileBuilder } from '../../src/monitoring/profile.ts';
import { computeDrift } from '../../src/monitoring/drift.ts';
import { mergePartials, type DriftPartial } from '../../src/monitoring/histograms.ts';

describe('drift statistics', () => {
  it('PSI is the sum of (c - r) ln(c / r) over shares, empty bins at 1e-4, and 0 for equal distributions', () => {
    expect(psi([10, 20, 70], [20, 40, 140])).toBe(0);
    const r = [0.1, 0.2, 0.7];
    const c = [0.3, 0.3, 0.4];
    const expected = r.reduce((s, ri, i) => s + (c[i] - ri) * Math.log(c[i] / ri), 0);
    expect(psi([10, 20, 70], [30, 30, 40])).toBeCloseTo(expected, 12);
    expect(psi([50, 50, 0], [50, 50, 0])).toBe(0);
    expect(Number.isFinite(psi([100, 0], [50, 50]))).toBe(true);
  });

  it('chi-square p-values match the table (3.841 at 1 df, 11.07 at 5 df are p = 0.05)', () => {
    expect(upperGamma(0.5, 3.841 / 2)).toBeCloseTo(0.05, 3);
    expect(upperGamma(2.5, 11.07 / 2)).toBeCloseTo(0.05, 3);
    expect(upperGamma(3, 0)).toBe(1);
    const same = chiSquareTest([100, 200, 700], [10, 20, 70]);
    expect(same.statistic).toBeCloseTo(0, 9);
    expect(same.pValue).toBeCloseTo(1, 6);
    expect(chiSquareTest([100, 200, 700], [70, 20, 10]).pValue).toBeLessThan(1e-6);
  });

  it('KS statistic is the largest CDF gap over the bins, with a p-value that falls as samples grow', () => {
    const ks = ksTest([25, 25, 25, 25], [10, 20, 30, 40]);
    expect(ks.statistic).toBeCloseTo(0.2, 12);
    expect(ksTest([250, 250, 250, 250], [100, 200, 300, 400]).pValue).toBeLessThan(ks.pValue);
    expect(ksTest([5, 5], [5, 5])).toMatchObject({ statistic: 0, pValue: 1 });
  });
});

describe('profiles and partials', () => {
  it('numeric bins follow width_bucket: a value equal to an edge goes to the bin above it', () => {
    expect([0.5, 1, 1.5, 2, 3].map((v) => numericBin([1, 2], v))).toEqual([0, 1, 1, 2, 2]);
  });

  it('builds decile edges, counts, missing share, mean and std; top categories plus other', () => {
    const builder = new ProfileBuilder(
      [
        { name: 'x', kind: 'numeric' },
        { name: 'c', kind: 'categorical' },
      ],
      true,
    );
    for (let i = 0; i < 1000; i++) builder.add([i % 100 === 0 ? null : i, i < 40 ? null : `k${i % 40}`], i, i + 1);
    const profile = builder.build('test');
    const [x, c] = profile.features;
    expect(x.kind === 'numeric' && x.edges.length).toBe(9);
    expect(x.counts.reduce((s, n) => s + n, 0)).toBe(990);
    expect(x.missing).toBe(10);
    expect(Math.max(...x.counts) - Math.min(...x.counts)).toBeLessThanOrEqual(2);
    expect(c.kind === 'categorical' && c.categories.length).toBe(30);
    expect(c.counts.reduce((s, n) => s + n, 0)).toBe(960);
    expect(c.counts[30]).toBe(10 * 24);
    expect(profile.actual?.counts.reduce((s, n) => s + n, 0)).toBe(1000);
    expect(Buffer.byteLength(JSON.stringify(profile))).toBeLessThan(4096);
  });

  it('chunk partials merge to the same counts, and the verdict needs the threshold share of features', () => {
    const part = (counts: number[], missing: number): DriftPartial => ({
      rows: counts.reduce((s, n) => s + n, missing),
      features: [{ counts, missing, sum: 0, sumsq: 0 }],
      prediction: { counts, missing: 0, sum: 0, sumsq: 0 },
      actual: null,
      errorRows: 2,
      absErrorSum: 2,
      sqErrorSum: 8,
    });
    const merged = mergePartials([part([1, 2, 3], 1), part([4, 5, 6], 0)])!;
    expect(merged.features[0]).toEqual({ counts: [5, 7, 9], missing: 1, sum: 0, sumsq: 0 });
    expect(merged.errorRows).toBe(4);
    const reference = {
      format: 1 as const,
      source: 't',
      rows: 21,
      features: [{ name: 'a', kind: 'numeric' as const, edges: [1, 2], counts: [5, 7, 9], missing: 0, mean: 1, std: 1 }],
      prediction: { name: 'prediction', kind: 'numeric' as const, edges: [1, 2], counts: [5, 7, 9], missing: 0, mean: 1, std: 1 },
      actual: null,
    };
    const stable = computeDrift(reference, merged, []);
    expect(stable).toMatchObject({ drifted: false, driftedShare: 0, quality: { rows: 4, mae: 1, rmse: 2 } });
    expect(stable.features[0].missingShare.current).toBeCloseTo(1 / 22, 12);
    const shifted = computeDrift(reference, mergePartials([part([20, 1, 1], 0)])!, [], { psi: 0.2, share: 0.5 });
    expect(shifted).toMatchObject({ drifted: true, driftedShare: 1 });
  });
});
