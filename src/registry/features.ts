// Turns records (JSON objects or database rows) into ONNX input tensors, following a
// resolved feature spec. Every mode uses this one mapper, so training and serving cannot
// skew. A record with a missing or invalid value is rejected with the field and the
// reason; it never becomes a silent NaN.
import ort from 'onnxruntime-node';
import type { DerivedFeature, Dtype, ResolvedSpec } from './spec.ts';
import type { ModelMetadata } from './metadata.ts';
import { allocate, describeValue, storeValue, trim, valuesOf, type TensorBuffer } from './dtypes.ts';

export { describeValue } from './dtypes.ts';

export type FeatureRecord = Record<string, unknown>;

export interface RecordError {
  /** Position of the record in the batch. */
  index: number;
  field: string;
  reason: string;
}

export interface MappedBatch {
  feeds: Record<string, ort.Tensor>;
  /** Positions of the records that made it into the tensors, in order. */
  accepted: number[];
  errors: RecordError[];
}

class FieldError extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(reason);
  }
}

/** A field read either from the record or from a derived feature computed for it. */
type Source = { kind: 'record'; name: string } | { kind: 'derived'; slot: number; name: string };

type Column = { input: string; dtype: Dtype; width: number; sources: Source[]; rank1: boolean };

function read(record: FeatureRecord, derived: unknown[], source: Source): unknown {
  return source.kind === 'record' ? record[source.name] : derived[source.slot];
}

function missing(field: string, value: unknown): never {
  throw new FieldError(field, value === undefined ? 'is missing' : 'is null');
}

/**
 * ISO 8601 or PostgreSQL's text form. A time without a zone is UTC, as database timestamps are
 * stored; PostgreSQL writes a whole-hour zone as +HH, which Date does not read.
 */
function parseTimestampText(value: string): Date {
  const iso = value.replace(' ', 'T');
  if (!iso.includes('T')) return new Date(iso);
  if (/(?:Z|[+-]\d\d(?::?\d\d)?)$/.test(iso)) return new Date(iso.replace(/([+-]\d\d)$/, '$1:00'));
  return new Date(`${iso}Z`);
}

function toTimestamp(field: string, value: unknown): Date {
  if (value === null || value === undefined) missing(field, value);
  let date: Date | undefined;
  if (value instanceof Date) date = value;
  else if (typeof value === 'string') date = parseTimestampText(value);
  else if (typeof value === 'number' && Number.isFinite(value)) date = new Date(value);
  if (!date || Number.isNaN(date.getTime())) throw new FieldError(field, `must be a timestamp, got ${describeValue(value)}`);
  return date;
}

function fieldValue(record: FeatureRecord, derived: unknown[], sources: Map<string, Source>, name: string): unknown {
  const source = sources.get(name);
  return source ? read(record, derived, source) : record[name];
}

function concatPart(name: string, value: unknown): string {
  if (value === null || value === undefined) missing(name, value);
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new FieldError(name, `must be a string or a finite number, got ${describeValue(value)}`);
}

// Runs once per record and derived feature in every lane: no closures or arrays per call.
function computeDerived(feature: DerivedFeature, record: FeatureRecord, derived: unknown[], sources: Map<string, Source>): unknown {
  switch (feature.op) {
    case 'concat': {
      let text = concatPart(feature.fields[0], fieldValue(record, derived, sources, feature.fields[0]));
      for (let i = 1; i < feature.fields.length; i++) text += feature.separator + concatPart(feature.fields[i], fieldValue(record, derived, sources, feature.fields[i]));
      return text;
    }
    case 'hour':
      return toTimestamp(feature.field, fieldValue(record, derived, sources, feature.field)).getUTCHours();
    case 'weekday':
      return (toTimestamp(feature.field, fieldValue(record, derived, sources, feature.field)).getUTCDay() + 6) % 7;
  }
}

export class FeatureMapper {
  private readonly columns: Column[];
  private readonly derivedSources = new Map<string, Source>();

  constructor(
    private readonly spec: ResolvedSpec,
    metadata: ModelMetadata,
  ) {
    spec.derived.forEach((d, slot) => this.derivedSources.set(d.name, { kind: 'derived', slot, name: d.name }));
    this.columns = spec.inputs.map((input) => {
      const model = metadata.inputs.find((m) => m.name === input.name);
      return {
        input: input.name,
        dtype: input.dtype,
        width: input.fields.length,
        rank1: model?.shape.length === 1,
        sources: input.fields.map((name) => this.derivedSources.get(name) ?? { kind: 'record', name }),
      };
    });
  }

  /** The record fields a caller must provide (derived features are computed, not sent). */
  requiredFields(): string[] {
    const fields = new Set<string>();
    const derivedNames = new Set(this.spec.derived.map((d) => d.name));
    for (const d of this.spec.derived) {
      for (const f of d.op === 'concat' ? d.fields : [d.field]) if (!derivedNames.has(f)) fields.add(f);
    }
    for (const c of this.columns) for (const s of c.sources) if (s.kind === 'record') fields.add(s.name);
    return [...fields];
  }

  /** Each derived feature's value for one record (into `derived`, reused across records), undefined where it cannot be computed (model monitoring profiles them). */
  derive(record: FeatureRecord, derived: unknown[] = new Array(this.spec.derived.length)): unknown[] {
    for (let d = 0; d < this.spec.derived.length; d++) {
      try {
        derived[d] = computeDerived(this.spec.derived[d], record, derived, this.derivedSources);
      } catch (err) {
        if (!(err instanceof FieldError)) throw err;
        derived[d] = undefined;
      }
    }
    return derived;
  }

  map(records: readonly FeatureRecord[]): MappedBatch {
    const n = records.length;
    const buffers = this.columns.map((c) => allocate(c.dtype, n * c.width));
    const { accepted, errors } = this.fill(records, buffers, true);
    const m = accepted.length;
    const feeds: Record<string, ort.Tensor> = {};
    this.columns.forEach((column, c) => {
      const data = trim(buffers[c], m * column.width);
      const dims = column.rank1 ? [m] : [m, column.width];
      feeds[column.input] = new ort.Tensor(column.dtype, data as never, dims);
    });
    return { feeds, accepted, errors };
  }

  /** The errors map() would report for these records, without building tensors. */
  check(records: readonly FeatureRecord[]): RecordError[] {
    const scratch = this.columns.map((c) => allocate(c.dtype, c.width));
    return this.fill(records, scratch, false).errors;
  }

  /** Writes each accepted record's row (compact) or every record over row 0 (a dry run). */
  private fill(records: readonly FeatureRecord[], buffers: TensorBuffer[], compact: boolean): { accepted: number[]; errors: RecordError[] } {
    const accepted: number[] = [];
    const errors: RecordError[] = [];
    const derived: unknown[] = new Array(this.spec.derived.length);
    for (let i = 0; i < records.length; i++) {
      const record = records[i];
      const row = compact ? accepted.length : 0;
      try {
        if (record === null || typeof record !== 'object' || Array.isArray(record)) throw new FieldError('(record)', 'must be a JSON object');
        for (let d = 0; d < this.spec.derived.length; d++) derived[d] = computeDerived(this.spec.derived[d], record, derived, this.derivedSources);
        for (let c = 0; c < this.columns.length; c++) {
          const column = this.columns[c];
          const buffer = buffers[c];
          for (let k = 0; k < column.width; k++) {
            const source = column.sources[k];
            const problem = storeValue(buffer, row * column.width + k, column.dtype, read(record, derived, source));
            if (problem !== undefined) throw new FieldError(source.name, problem);
          }
        }
        accepted.push(i);
      } catch (err) {
        if (!(err instanceof FieldError)) throw err;
        errors.push({ index: i, field: err.field, reason: `${err.field} ${err.message}` });
      }
    }
    return { accepted, errors };
  }
}

/** Reads the prediction of each row from the spec's output tensor, clipped as the spec says. */
export function readPredictions(spec: ResolvedSpec, outputs: Record<string, ort.Tensor>): number[] {
  const tensor = outputs[spec.output.name];
  const rows = tensor.dims[0] ?? 0;
  const width = tensor.dims.length > 1 ? tensor.size / Math.max(rows, 1) : 1;
  const data = valuesOf(tensor.type, tensor.data) as ArrayLike<number | bigint>;
  const { min = -Infinity, max = Infinity } = spec.output.clip ?? {};
  const predictions = new Array<number>(rows);
  for (let i = 0; i < rows; i++) {
    const value = Number(data[i * width + spec.output.index]);
    predictions[i] = value < min ? min : value > max ? max : value;
  }
  return predictions;
}
