// Predictions out of a sub-batch's columns, for COPY … FROM STDIN, built without an object
// per row: binary rows for the lean `batch_predictions` table (whose column types are
// known), CSV text for a user's own target table (whose column types are the user's, so
// PostgreSQL converts the text).
import { csvField, csvText } from './csv.ts';
import { int64Text, jsonAt, timestampText, type Column, type ColumnBatch } from './columns.ts';
import type { TargetColumn } from './job.ts';

/**
 * What the model gave for a sub-batch (PredictResult's contract): one prediction per row
 * (null: rejected) and, from a classifier, the classes, each row's label and its
 * probabilities (row-major, classes.length per row).
 */
export interface Scored {
  predictions: ArrayLike<number | null>;
  classes?: ArrayLike<string | number>;
  labels?: ArrayLike<string | number | null>;
  probabilities?: Float32Array;
}

/** Row i's class probabilities, or null when the result has none. */
function probabilitiesOf(scored: Scored, i: number): Float32Array | null {
  const width = scored.classes?.length ?? 0;
  if (!scored.probabilities || width === 0) return null;
  return scored.probabilities.subarray(i * width, (i + 1) * width);
}

/** The source columns a writer reads: the key, the event time, the actual, the passthrough columns. */
export interface RowSource {
  key: Column;
  time: Column;
  actual: Column | null;
  passthrough: Column[];
}

/** A growable byte buffer; `take()` hands out what was written and starts a new one. */
class Bytes {
  buf: Buffer;
  dv: DataView;
  at = 0;

  constructor(private size: number) {
    this.buf = Buffer.allocUnsafe(size);
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  ensure(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(bigger, 0, 0, this.at);
    this.buf = bigger;
    this.dv = new DataView(bigger.buffer, bigger.byteOffset, bigger.byteLength);
  }

  take(): Buffer {
    const out = this.buf.subarray(0, this.at);
    this.buf = Buffer.allocUnsafe(this.size);
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.at = 0;
    return out;
  }
}

const REAL_OID = 700;

/** The passthrough columns of row i as one JSON object's text. */
function passthroughJson(columns: Column[], i: number): string {
  let text = '{';
  for (let k = 0; k < columns.length; k++) text += `${k ? ',' : ''}${JSON.stringify(columns[k].plan.name)}:${jsonAt(columns[k], i)}`;
  return `${text}}`;
}

/**
 * Binary COPY rows for batch_predictions: run_key, entity_id, prediction, actual,
 * event_time, then passthrough, label and probabilities when the writer has them.
 */
export class LeanRows {
  readonly columns: string[];
  private readonly bytes: Bytes;

  constructor(
    private readonly runKey: number,
    private readonly source: RowSource,
    private readonly with_: { label: boolean; probabilities: boolean },
  ) {
    this.columns = [
      'run_key',
      'entity_id',
      'prediction',
      'actual',
      'event_time',
      ...(source.passthrough.length ? ['passthrough'] : []),
      ...(with_.label ? ['label'] : []),
      ...(with_.probabilities ? ['probabilities'] : []),
    ];
    this.bytes = new Bytes(64 * 1024);
  }

  /** COPY's binary header: signature, flags, no extension. */
  static header(): Buffer {
    const h = Buffer.alloc(19);
    h.write('PGCOPY\n\xff\r\n\0', 0, 'latin1');
    return h;
  }

  static trailer(): Buffer {
    return Buffer.from([0xff, 0xff]);
  }

  /** The rows of `batch` with a prediction, as COPY binary tuples. */
  encode(batch: ColumnBatch, scored: Scored): Buffer {
    const { key, time, actual, passthrough } = this.source;
    const b = this.bytes;
    const fields = this.columns.length;
    b.ensure(batch.length * 64);
    for (let i = 0; i < batch.length; i++) {
      const p = scored.predictions[i];
      if (p === null) continue;
      b.ensure(2 + 12 + 12 + 12 + 12 + 12);
      const dv = b.dv;
      let at = b.at;
      dv.setInt16(at, fields);
      dv.setInt32(at + 2, 4);
      dv.setInt32(at + 6, this.runKey);
      dv.setInt32(at + 10, 8);
      dv.setInt32(at + 14, key.rawView.getInt32(i * 8));
      dv.setInt32(at + 18, key.rawView.getInt32(i * 8 + 4));
      dv.setInt32(at + 22, 8);
      dv.setFloat64(at + 26, p);
      at += 34;
      const a = actual && !actual.nulls[i] && actual.plan.kind === 'float' ? actual.f64[i] : NaN;
      if (!Number.isFinite(a)) {
        dv.setInt32(at, -1);
        at += 4;
      } else {
        dv.setInt32(at, 8);
        dv.setFloat64(at + 4, a);
        at += 12;
      }
      if (time.nulls[i]) {
        dv.setInt32(at, -1);
        at += 4;
      } else {
        dv.setInt32(at, 8);
        dv.setInt32(at + 4, time.rawView.getInt32(i * 8));
        dv.setInt32(at + 8, time.rawView.getInt32(i * 8 + 4));
        at += 12;
      }
      b.at = at;
      if (passthrough.length) this.jsonb(passthroughJson(passthrough, i));
      if (this.with_.label) this.text(scored.labels?.[i] ?? null);
      if (this.with_.probabilities) this.reals(probabilitiesOf(scored, i));
    }
    return b.take();
  }

  private jsonb(text: string): void {
    const b = this.bytes;
    b.ensure(5 + text.length * 3);
    const n = b.buf.write(text, b.at + 5, 'utf8');
    b.buf.writeInt32BE(n + 1, b.at);
    b.buf[b.at + 4] = 1; // jsonb's binary format version
    b.at += 5 + n;
  }

  private text(value: string | number | null): void {
    const b = this.bytes;
    if (value === null) {
      b.ensure(4);
      b.at = b.buf.writeInt32BE(-1, b.at);
      return;
    }
    const text = String(value);
    b.ensure(4 + text.length * 3);
    const n = b.buf.write(text, b.at + 4, 'utf8');
    b.buf.writeInt32BE(n, b.at);
    b.at += 4 + n;
  }

  /** A real[] in binary: one dimension, no nulls. */
  private reals(values: ArrayLike<number> | null): void {
    const b = this.bytes;
    if (values === null) {
      b.ensure(4);
      b.at = b.buf.writeInt32BE(-1, b.at);
      return;
    }
    const n = values.length;
    b.ensure(4 + 20 + n * 8);
    let at = b.buf.writeInt32BE(20 + n * 8, b.at);
    at = b.buf.writeInt32BE(1, at); // dimensions
    at = b.buf.writeInt32BE(0, at); // has nulls
    at = b.buf.writeInt32BE(REAL_OID, at);
    at = b.buf.writeInt32BE(n, at);
    at = b.buf.writeInt32BE(1, at); // lower bound
    for (let k = 0; k < n; k++) {
      at = b.buf.writeInt32BE(4, at);
      at = b.buf.writeFloatBE(values[k], at);
    }
    b.at = at;
  }
}

/** One CSV field of a source column at row i (empty: NULL). */
function csvAt(c: Column, i: number): string {
  if (c.nulls[i]) return '';
  switch (c.plan.kind) {
    case 'float':
      return Number.isFinite(c.f64[i]) ? String(c.f64[i]) : '';
    case 'key':
      return int64Text(c.raw, i);
    case 'timestamp':
    case 'timestamptz':
      return timestampText(c.raw, i, c.plan.kind === 'timestamptz');
    case 'bool':
      return c.u8[i] === 1 ? 't' : 'f';
    default:
      return csvText(c.text[i]!);
  }
}

/** The run's constants a mapped target may take. */
export interface RunValues {
  job: string;
  modelName: string;
  modelVersion: number;
  runId: string;
}

/** CSV rows for a target table of the user's own, column by column as its mapping says. */
export class MappedRows {
  readonly columns: string[];
  private readonly writers: Array<(i: number, scored: Scored) => string>;

  constructor(mapping: TargetColumn[], source: RowSource, batch: ColumnBatch, run: RunValues) {
    this.columns = mapping.map((m) => m.column);
    const constant = (text: string) => () => text;
    this.writers = mapping.map((m) => {
      if (m.source !== undefined) {
        const c = batch.column(m.source);
        return (i) => csvAt(c, i);
      }
      switch (m.field) {
        case 'entity_id':
          return (i) => csvAt(source.key, i);
        case 'prediction':
          return (i, s) => String(s.predictions[i]);
        case 'actual':
          return source.actual ? (i) => csvAt(source.actual!, i) : constant('');
        case 'event_time':
          return (i) => csvAt(source.time, i);
        case 'passthrough':
          return (i) => csvText(passthroughJson(source.passthrough, i));
        case 'label':
          return (i, s) => csvField(s.labels?.[i] ?? null);
        case 'probabilities':
          return (i, s) => {
            const p = probabilitiesOf(s, i);
            return p ? csvText(`{${p.join(',')}}`) : '';
          };
        case 'job':
          return constant(csvText(run.job));
        case 'model_name':
          return constant(csvText(run.modelName));
        case 'model_version':
          return constant(String(run.modelVersion));
        case 'run_id':
          return constant(csvText(run.runId));
      }
    });
  }

  /** The rows of `batch` with a prediction, as CSV lines. */
  encode(batch: ColumnBatch, scored: Scored): string {
    let text = '';
    const writers = this.writers;
    for (let i = 0; i < batch.length; i++) {
      if (scored.predictions[i] === null) continue;
      let line = writers[0](i, scored);
      for (let w = 1; w < writers.length; w++) line += `,${writers[w](i, scored)}`;
      text += `${line}\n`;
    }
    return text;
  }
}
