// A reference profile: per monitored feature its binned distribution (numeric: quantile bin
// edges and counts, mean, std; categorical: the top categories and "other"), its missing
// share, and the same for the predictions and the actuals. A few kilobytes per version.
import { categoryValue, numericValue, type MonitoredFeature } from './features.ts';

export const PROFILE_FORMAT = 1;
/** Numeric features get up to this many quantile bins (fewer when values repeat). */
export const NUMERIC_BINS = 10;
/** Categorical features keep their most frequent categories; the rest count as "other". */
export const TOP_CATEGORIES = 30;

export interface NumericProfile {
  name: string;
  kind: 'numeric';
  /** Inner bin edges: bin i holds values in [edges[i-1], edges[i]), the outer bins are open. */
  edges: number[];
  counts: number[];
  missing: number;
  mean: number;
  std: number;
}

export interface CategoricalProfile {
  name: string;
  kind: 'categorical';
  categories: string[];
  /** One count per category, then "other". */
  counts: number[];
  missing: number;
}

export type FeatureProfile = NumericProfile | CategoricalProfile;

export interface Profile {
  format: typeof PROFILE_FORMAT;
  /** Where the reference data came from (table window, CSV file or batch run). */
  source: string;
  rows: number;
  features: FeatureProfile[];
  prediction: NumericProfile;
  actual: NumericProfile | null;
}

/** The bin of a numeric value: the number of edges at or below it (as SQL's width_bucket). */
export function numericBin(edges: readonly number[], value: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (edges[mid] <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The labels of a profile's bins, for tables and charts. */
export function binLabels(profile: FeatureProfile): string[] {
  if (profile.kind === 'categorical') return [...profile.categories, 'other'];
  const e = profile.edges.map((x) => Number(x.toPrecision(4)));
  if (e.length === 0) return ['all'];
  return [`< ${e[0]}`, ...e.slice(1).map((x, i) => `${e[i]} – ${x}`), `≥ ${e[e.length - 1]}`];
}

function numericProfile(name: string, values: number[], missing: number): NumericProfile {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  const edges: number[] = [];
  if (n > 0) {
    for (let k = 1; k < NUMERIC_BINS; k++) {
      const edge = sorted[Math.floor((k * n) / NUMERIC_BINS)];
      if (edge > sorted[0] && (edges.length === 0 || edge > edges[edges.length - 1])) edges.push(edge);
    }
  }
  const counts = new Array<number>(edges.length + 1).fill(0);
  let sum = 0;
  let sumsq = 0;
  for (const v of sorted) {
    counts[numericBin(edges, v)]++;
    sum += v;
    sumsq += v * v;
  }
  const mean = n ? sum / n : 0;
  return { name, kind: 'numeric', edges, counts, missing, mean, std: n ? Math.sqrt(Math.max(sumsq / n - mean * mean, 0)) : 0 };
}

function categoricalProfile(name: string, counts: Map<string, number>, missing: number): CategoricalProfile {
  const ranked = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const top = ranked.slice(0, TOP_CATEGORIES);
  const other = ranked.slice(TOP_CATEGORIES).reduce((s, [, c]) => s + c, 0);
  return { name, kind: 'categorical', categories: top.map(([k]) => k), counts: [...top.map(([, c]) => c), other], missing };
}

/** Collects reference data (one record's feature values, prediction and actual at a time) and builds its profile. */
export class ProfileBuilder {
  private readonly numeric: number[][];
  private readonly categorical: Map<string, number>[];
  private readonly missing: number[];
  private readonly predictions: number[] = [];
  private readonly actuals: number[] = [];
  private rows = 0;

  constructor(
    private readonly features: readonly MonitoredFeature[],
    private readonly withActual: boolean,
  ) {
    this.numeric = features.map(() => []);
    this.categorical = features.map(() => new Map());
    this.missing = features.map(() => 0);
  }

  add(values: readonly unknown[], prediction: number | null, actual: unknown): void {
    this.rows++;
    this.features.forEach((f, i) => {
      if (f.kind === 'numeric') {
        const v = numericValue(values[i]);
        if (Number.isNaN(v)) this.missing[i]++;
        else this.numeric[i].push(v);
      } else {
        const c = categoryValue(values[i]);
        if (c === undefined) this.missing[i]++;
        else this.categorical[i].set(c, (this.categorical[i].get(c) ?? 0) + 1);
      }
    });
    if (prediction !== null) this.predictions.push(prediction);
    const a = numericValue(actual);
    if (this.withActual && !Number.isNaN(a)) this.actuals.push(a);
  }

  build(source: string): Profile {
    if (this.predictions.length === 0) throw new ProfileError(`the reference data (${source}) has no row the model can score`);
    return {
      format: PROFILE_FORMAT,
      source,
      rows: this.rows,
      features: this.features.map((f, i) =>
        f.kind === 'numeric' ? numericProfile(f.name, this.numeric[i], this.missing[i]) : categoricalProfile(f.name, this.categorical[i], this.missing[i]),
      ),
      prediction: numericProfile('prediction', this.predictions, this.rows - this.predictions.length),
      actual: this.withActual ? numericProfile('actual', this.actuals, this.rows - this.actuals.length) : null,
    };
  }
}

export class ProfileError extends Error {
  override name = 'ProfileError';
}
