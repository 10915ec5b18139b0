// One pass of drift accounting: a batch chunk (or a monitor run) counts its rows into the
// reference profile's bins as they stream past. The partial result is stored with the chunk
// (replaced when the chunk is retried) and partials merge by adding counts.
import { categoryValue, FeatureReader, numericValue } from './features.ts';
import { numericBin, ProfileError, type CategoricalProfile, type FeatureProfile, type Profile } from './profile.ts';
import { valueAt, type Column, type ColumnBatch } from '../batch/columns.ts';
import type { FeatureRecord } from '../registry/features.ts';
import type { DerivedFeature } from '../registry/spec.ts';
import type { LoadedModel } from '../registry/runtime.ts';

export interface BinnedPartial {
  counts: number[];
  missing: number;
  /** Sum and sum of squares of the non-missing values (numeric only). */
  sum: number;
  sumsq: number;
}

export interface DriftPartial {
  rows: number;
  /** In the order of the reference profile's features. */
  features: BinnedPartial[];
  prediction: BinnedPartial;
  actual: BinnedPartial | null;
  /** Rows with a prediction and an actual, and their absolute and squared errors. */
  errorRows: number;
  absErrorSum: number;
  sqErrorSum: number;
}

/** A partial being counted: typed counts, turned into a BinnedPartial by result(). */
interface Counter {
  counts: Float64Array;
  missing: number;
  sum: number;
  sumsq: number;
}

function counterFor(profile: FeatureProfile): Counter {
  return { counts: new Float64Array(profile.counts.length), missing: 0, sum: 0, sumsq: 0 };
}

function binnedOf(c: Counter): BinnedPartial {
  return { counts: Array.from(c.counts), missing: c.missing, sum: c.sum, sumsq: c.sumsq };
}

/** Grid cells of a BinLookup between the first and the last edge. */
const GRID_CELLS = 512;

/**
 * numericBin (the number of edges at or below a value) without a binary search's
 * unpredictable branches: a grid over the edges' span gives a first guess, and a walk to
 * the neighbouring edges (almost always none) makes it exact whatever the guess was.
 */
export class BinLookup {
  readonly edges: Float64Array;
  readonly last: number;
  readonly low: number;
  readonly scale: number;
  readonly guess: Uint8Array;

  constructor(edges: readonly number[]) {
    this.edges = Float64Array.from(edges);
    this.last = edges.length;
    this.low = edges.length ? edges[0] : 0;
    const span = edges.length ? edges[edges.length - 1] - edges[0] : 0;
    this.scale = span > 0 ? GRID_CELLS / span : 0;
    this.guess = new Uint8Array(GRID_CELLS + 1);
    for (let j = 0; j <= GRID_CELLS; j++) this.guess[j] = Math.min(numericBin(edges, this.low + j / this.scale), 255);
  }
}

/** The bin of a finite value (numericBin's). */
export function binOf(lookup: BinLookup, v: number): number {
  const { edges, last } = lookup;
  let cell = (v - lookup.low) * lookup.scale;
  cell = cell > 0 ? (cell < GRID_CELLS ? cell : GRID_CELLS) : 0;
  let bin = lookup.guess[cell | 0];
  while (bin > 0 && v < edges[bin - 1]) bin--;
  while (bin < last && v >= edges[bin]) bin++;
  return bin;
}

/** Counts a numeric value (NaN: missing) into a counter. */
function countNumber(lookup: BinLookup, v: number, into: Counter): void {
  if (Number.isNaN(v)) {
    into.missing++;
    return;
  }
  into.counts[binOf(lookup, v)]++;
  into.sum += v;
  into.sumsq += v * v;
}

/** Counts one value into a feature's bins. */
type Binner = (value: unknown, into: Counter) => void;

/** A categorical profile's bin of each category ("other" for the rest). */
class CategoryIndex {
  readonly other: number;
  private readonly index: Map<string, number>;
  /** The categories that are a number's text, by that number (a Map key compares as SameValueZero: -0 finds "0"). */
  private readonly numbers = new Map<number, number>();
  /** The categories that are `${a}${separator}${b}` for integers a, b in [0, PAIR_RANGE), by a * PAIR_RANGE + b. */
  private pairs: Map<number, number> | null = null;

  constructor(private readonly profile: CategoricalProfile) {
    this.index = new Map(profile.categories.map((c, i) => [c, i]));
    this.other = profile.categories.length;
    profile.categories.forEach((c, i) => {
      const n = Number(c);
      if (String(n) === c) this.numbers.set(n, i);
    });
  }

  of(category: string): number {
    return this.index.get(category) ?? this.other;
  }

  /** The bin of String(v): the category that reads back as v, if any. */
  ofNumber(v: number): number {
    return this.numbers.get(v) ?? this.other;
  }

  /** The bin of `${a}${separator}${b}` for integers a, b in [0, PAIR_RANGE), no string built. */
  ofPair(a: number, b: number): number {
    return this.pairs!.get(a * PAIR_RANGE + b) ?? this.other;
  }

  /** Readies ofPair for one separator: every way each category splits into two such integers around it. */
  pairsFor(separator: string): this {
    const pairs = new Map<number, number>();
    const part = (text: string): number | undefined => {
      const n = Number(text);
      return text !== '' && String(n) === text && Number.isInteger(n) && n >= 0 && n < PAIR_RANGE ? n : undefined;
    };
    this.profile.categories.forEach((c, i) => {
      for (let at = c.indexOf(separator); at >= 0 && at <= c.length; at = c.indexOf(separator, at + 1)) {
        const [a, b] = [part(c.slice(0, at)), part(c.slice(at + separator.length))];
        if (a !== undefined && b !== undefined) pairs.set(a * PAIR_RANGE + b, i);
        if (separator === '' && at === c.length) break;
      }
    });
    this.pairs = pairs;
    return this;
  }
}

/** Pair keys a * PAIR_RANGE + b stay small integers (below 2^30). */
const PAIR_RANGE = 1 << 15;

function binnerFor(profile: FeatureProfile): Binner {
  if (profile.kind === 'numeric') {
    const lookup = new BinLookup(profile.edges);
    return (value, into) => countNumber(lookup, numericValue(value), into);
  }
  const index = new CategoryIndex(profile);
  return (value, into) => {
    const c = categoryValue(value);
    if (c === undefined) into.missing++;
    else into.counts[index.of(c)]++;
  };
}

/** Counts rows 0..n-1 of a sub-batch's columns into one feature's counter. */
type ColumnStep = (n: number) => void;

/** A numeric value of a column at row i, as numericValue reads what the row view returns. */
function numericAt(c: Column, i: number): number {
  if (c.nulls[i]) return NaN;
  if (c.plan.kind === 'float') {
    const v = c.f64[i];
    return Number.isFinite(v) ? v : NaN;
  }
  return numericValue(valueAt(c, i));
}

export class DriftAccumulator {
  private readonly reader: FeatureReader;
  private readonly order: number[];
  private readonly binners: Binner[];
  private readonly predictionBins: BinLookup;
  private readonly actualBins: BinLookup | null;
  private readonly values: unknown[] = [];
  private rows = 0;
  private readonly features: Counter[];
  private readonly prediction: Counter;
  private readonly actual: Counter | null;
  private errorRows = 0;
  private absErrorSum = 0;
  private sqErrorSum = 0;
  /** addColumns' plan for the batch it was made for (a chunk reuses one batch). */
  private columnPlan: { batch: ColumnBatch; steps: ColumnStep[]; byRecord: number[] } | null = null;

  constructor(
    readonly reference: Profile,
    private readonly model: LoadedModel,
  ) {
    this.reader = new FeatureReader(model);
    const position = new Map(this.reader.features.map((f, i) => [f.name, i]));
    this.order = reference.features.map((f) => {
      const i = position.get(f.name);
      if (i === undefined) throw new ProfileError(`the reference profile has feature ${f.name}, which model ${model.name}@${model.version} does not read`);
      return i;
    });
    this.binners = reference.features.map(binnerFor);
    this.predictionBins = new BinLookup(reference.prediction.edges);
    this.actualBins = reference.actual ? new BinLookup(reference.actual.edges) : null;
    this.features = reference.features.map(counterFor);
    this.prediction = counterFor(reference.prediction);
    this.actual = reference.actual ? counterFor(reference.actual) : null;
  }

  /** One row read from the source: its features (rejected or not), prediction (null when rejected) and actual. */
  add(record: FeatureRecord, prediction: number | null, actual: unknown): void {
    this.rows++;
    this.reader.read(record, this.values);
    for (let f = 0; f < this.binners.length; f++) this.binners[f](this.values[this.order[f]], this.features[f]);
    if (prediction !== null) this.addOutcome(prediction, numericValue(actual));
  }

  /**
   * Rows 0..batch.length-1 of a batch chunk's sub-batch: the same counts as add() of each
   * row view with its prediction and the actual column's value, read from the columns
   * feature by feature. `views` are the row views over `batch` (for features computed by
   * the feature mapper that the columns cannot give directly).
   */
  addColumns(batch: ColumnBatch, views: readonly FeatureRecord[], predictions: ReadonlyArray<number | null>, actual: Column | null = null): void {
    if (this.columnPlan?.batch !== batch) this.columnPlan = { batch, ...this.planColumns(batch) };
    const n = batch.length;
    const { steps, byRecord } = this.columnPlan;
    this.rows += n;
    for (let s = 0; s < steps.length; s++) steps[s](n);
    if (byRecord.length) {
      for (let i = 0; i < n; i++) {
        this.reader.read(views[i], this.values);
        for (const f of byRecord) this.binners[f](this.values[this.order[f]], this.features[f]);
      }
    }
    if (actual) {
      for (let i = 0; i < n; i++) {
        const p = predictions[i];
        if (p !== null) this.addOutcome(p, numericAt(actual, i));
      }
      return;
    }
    const lookup = this.predictionBins;
    const into = this.prediction;
    const counts = into.counts;
    let { missing, sum, sumsq } = into;
    for (let i = 0; i < n; i++) {
      const p = predictions[i];
      if (p === null) continue;
      if (Number.isNaN(p)) missing++;
      else {
        counts[binOf(lookup, p)]++;
        sum += p;
        sumsq += p * p;
      }
    }
    into.missing = missing;
    into.sum = sum;
    into.sumsq = sumsq;
  }

  private addOutcome(prediction: number, a: number): void {
    countNumber(this.predictionBins, numericValue(prediction), this.prediction);
    if (Number.isNaN(a)) return;
    if (this.actual) countNumber(this.actualBins!, a, this.actual);
    this.errorRows++;
    this.absErrorSum += Math.abs(prediction - a);
    this.sqErrorSum += (prediction - a) ** 2;
  }

  /** How each feature is counted from a batch's columns; features the columns cannot give go by record. */
  private planColumns(batch: ColumnBatch): { steps: ColumnStep[]; byRecord: number[] } {
    const columns = new Map(batch.columns.map((c) => [c.plan.name, c]));
    const derived = new Map(this.model.spec.derived.map((d) => [d.name, d]));
    const steps: ColumnStep[] = [];
    const byRecord: number[] = [];
    this.reference.features.forEach((profile, f) => {
      const into = this.features[f];
      const feature = derived.get(profile.name);
      const column = columns.get(profile.name);
      const step = feature ? derivedStep(feature, profile, columns, derived, into) : column ? fieldStep(column, profile, into) : null;
      if (step) steps.push(step);
      else byRecord.push(f);
    });
    return { steps, byRecord };
  }

  result(): DriftPartial {
    return {
      rows: this.rows,
      features: this.features.map(binnedOf),
      prediction: binnedOf(this.prediction),
      actual: this.actual && binnedOf(this.actual),
      errorRows: this.errorRows,
      absErrorSum: this.absErrorSum,
      sqErrorSum: this.sqErrorSum,
    };
  }
}

/** A feature that is a source column. */
function fieldStep(c: Column, profile: FeatureProfile, into: Counter): ColumnStep {
  const { nulls } = c;
  const counts = into.counts;
  if (profile.kind === 'numeric') {
    const lookup = new BinLookup(profile.edges);
    if (c.plan.kind !== 'float') {
      return (n) => {
        for (let i = 0; i < n; i++) countNumber(lookup, numericAt(c, i), into);
      };
    }
    const { f64 } = c;
    return (n) => {
      let { missing, sum, sumsq } = into;
      for (let i = 0; i < n; i++) {
        const v = f64[i];
        if (nulls[i] || !Number.isFinite(v)) {
          missing++;
          continue;
        }
        counts[binOf(lookup, v)]++;
        sum += v;
        sumsq += v * v;
      }
      into.missing = missing;
      into.sum = sum;
      into.sumsq = sumsq;
    };
  }
  const index = new CategoryIndex(profile);
  if (c.plan.kind === 'float') {
    const { f64 } = c;
    return (n) => {
      for (let i = 0; i < n; i++) {
        if (nulls[i]) into.missing++;
        else counts[index.ofNumber(f64[i])]++;
      }
    };
  }
  if (c.plan.kind === 'text') {
    const { text } = c;
    return (n) => {
      for (let i = 0; i < n; i++) {
        if (nulls[i]) into.missing++;
        else counts[index.of(text[i]!)]++;
      }
    };
  }
  return (n) => {
    for (let i = 0; i < n; i++) {
      const category = categoryValue(valueAt(c, i));
      if (category === undefined) into.missing++;
      else counts[index.of(category)]++;
    }
  };
}

/**
 * A categorical feature the spec derives by concatenating float or text source columns (PU_DO):
 * the category the feature mapper would build, missing where it would reject a part (null, or
 * a number that is not finite). Other derived features go by record.
 */
function derivedStep(feature: DerivedFeature, profile: FeatureProfile, columns: Map<string, Column>, derived: Map<string, DerivedFeature>, into: Counter): ColumnStep | null {
  if (feature.op !== 'concat' || profile.kind !== 'categorical') return null;
  const parts = feature.fields.map((name) => (derived.has(name) ? undefined : columns.get(name)));
  if (parts.some((c) => c === undefined || (c.plan.kind !== 'float' && c.plan.kind !== 'text'))) return null;
  const columnsOf = parts as Column[];
  const separator = feature.separator;
  const counts = into.counts;
  const index = new CategoryIndex(profile);
  if (columnsOf.length === 2 && columnsOf.every((c) => c.plan.kind === 'float')) {
    // Two numbers (zone ids): small non-negative integers find their category by the pair.
    const [af, bf, an, bn] = [columnsOf[0].f64, columnsOf[1].f64, columnsOf[0].nulls, columnsOf[1].nulls];
    index.pairsFor(separator);
    return (n) => {
      for (let i = 0; i < n; i++) {
        const x = af[i];
        const y = bf[i];
        if (an[i] || bn[i] || !Number.isFinite(x) || !Number.isFinite(y)) into.missing++;
        else if (x >= 0 && y >= 0 && x < PAIR_RANGE && y < PAIR_RANGE && Number.isInteger(x) && Number.isInteger(y)) counts[index.ofPair(x, y)]++;
        else counts[index.of(`${x}${separator}${y}`)]++;
      }
    };
  }
  return (n) => {
    rows: for (let i = 0; i < n; i++) {
      let text = '';
      for (let k = 0; k < columnsOf.length; k++) {
        const c = columnsOf[k];
        if (c.nulls[i]) {
          into.missing++;
          continue rows;
        }
        let part: string;
        if (c.plan.kind === 'text') part = c.text[i]!;
        else {
          const v = c.f64[i];
          if (!Number.isFinite(v)) {
            into.missing++;
            continue rows;
          }
          part = String(v);
        }
        text = k === 0 ? part : text + separator + part;
      }
      counts[index.of(text)]++;
    }
  };
}

function addBinned(a: BinnedPartial, b: BinnedPartial): BinnedPartial {
  return { counts: a.counts.map((c, i) => c + (b.counts[i] ?? 0)), missing: a.missing + b.missing, sum: a.sum + b.sum, sumsq: a.sumsq + b.sumsq };
}

/** The run's counts: every chunk's partial added up (null when there are none). */
export function mergePartials(partials: readonly DriftPartial[]): DriftPartial | null {
  if (partials.length === 0) return null;
  return partials.reduce((a, b) => ({
    rows: a.rows + b.rows,
    features: a.features.map((f, i) => addBinned(f, b.features[i])),
    prediction: addBinned(a.prediction, b.prediction),
    actual: a.actual && b.actual ? addBinned(a.actual, b.actual) : (a.actual ?? b.actual),
    errorRows: a.errorRows + b.errorRows,
    absErrorSum: a.absErrorSum + b.absErrorSum,
    sqErrorSum: a.sqErrorSum + b.sqErrorSum,
  }));
}
