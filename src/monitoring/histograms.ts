// One pass of drift accounting: a batch chunk (or a monitor run) counts its rows into the
// reference profile's bins as they stream past. The partial result is stored with the chunk
// (replaced when the chunk is retried) and partials merge by adding counts.
import { categoryValue, FeatureReader, numericValue } from './features.ts';
import { numericBin, ProfileError, type FeatureProfile, type Profile } from './profile.ts';
import type { FeatureRecord } from '../registry/features.ts';
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

function emptyPartial(profile: FeatureProfile): BinnedPartial {
  return { counts: new Array<number>(profile.counts.length).fill(0), missing: 0, sum: 0, sumsq: 0 };
}

/** Counts one value into a feature's bins. */
type Binner = (value: unknown, into: BinnedPartial) => void;

function binnerFor(profile: FeatureProfile): Binner {
  if (profile.kind === 'numeric') {
    const edges = profile.edges;
    return (value, into) => {
      const v = numericValue(value);
      if (Number.isNaN(v)) {
        into.missing++;
        return;
      }
      into.counts[numericBin(edges, v)]++;
      into.sum += v;
      into.sumsq += v * v;
    };
  }
  const index = new Map(profile.categories.map((c, i) => [c, i]));
  const other = profile.categories.length;
  return (value, into) => {
    const c = categoryValue(value);
    if (c === undefined) into.missing++;
    else into.counts[index.get(c) ?? other]++;
  };
}

export class DriftAccumulator {
  private readonly reader: FeatureReader;
  private readonly order: number[];
  private readonly binners: Binner[];
  private readonly predictionBinner: Binner;
  private readonly actualBinner: Binner | null;
  private readonly values: unknown[] = [];
  private readonly partial: DriftPartial;

  constructor(
    readonly reference: Profile,
    model: LoadedModel,
  ) {
    this.reader = new FeatureReader(model);
    const position = new Map(this.reader.features.map((f, i) => [f.name, i]));
    this.order = reference.features.map((f) => {
      const i = position.get(f.name);
      if (i === undefined) throw new ProfileError(`the reference profile has feature ${f.name}, which model ${model.name}@${model.version} does not read`);
      return i;
    });
    this.binners = reference.features.map(binnerFor);
    this.predictionBinner = binnerFor(reference.prediction);
    this.actualBinner = reference.actual ? binnerFor(reference.actual) : null;
    this.partial = {
      rows: 0,
      features: reference.features.map(emptyPartial),
      prediction: emptyPartial(reference.prediction),
      actual: reference.actual ? emptyPartial(reference.actual) : null,
      errorRows: 0,
      absErrorSum: 0,
      sqErrorSum: 0,
    };
  }

  /** One row read from the source: its features (rejected or not), prediction (null when rejected) and actual. */
  add(record: FeatureRecord, prediction: number | null, actual: unknown): void {
    const p = this.partial;
    p.rows++;
    this.reader.read(record, this.values);
    for (let f = 0; f < this.binners.length; f++) this.binners[f](this.values[this.order[f]], p.features[f]);
    if (prediction === null) return;
    this.predictionBinner(prediction, p.prediction);
    const a = numericValue(actual);
    if (Number.isNaN(a)) return;
    this.actualBinner?.(a, p.actual!);
    p.errorRows++;
    p.absErrorSum += Math.abs(prediction - a);
    p.sqErrorSum += (prediction - a) ** 2;
  }

  result(): DriftPartial {
    return this.partial;
  }
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
