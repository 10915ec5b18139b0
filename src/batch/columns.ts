// A chunk's source rows read with `COPY (SELECT …) TO STDOUT (FORMAT binary)` straight into
// columns (typed arrays, raw 8-byte keys and times), a sub-batch at a time, instead of a
// cursor that builds a JS object with parsed fields per row. The model's feature mapper reads
// records by field name: it gets row views, one small object per position, made once per
// chunk, whose getters read the current sub-batch's columns. The drift accumulator reads the
// columns themselves (DriftAccumulator.addColumns).
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { quoteIdent } from './job.ts';

const { builtins } = pg.types;

/** How a column travels: its select expression's type in the binary COPY, and its JS value. */
export type ColumnKind =
  /** int2/int4/int8/float4/float8/numeric, selected as float8: a number (pg parses them as numbers in this project). */
  | 'float'
  /** The entity key, selected as int8: 8 raw bytes, a number when read by name. */
  | 'key'
  /** timestamp or timestamptz: 8 raw bytes (microseconds since 2000-01-01), text as pg prints it when read by name. */
  | 'timestamp'
  | 'timestamptz'
  | 'bool'
  /** json or jsonb, selected as text: the value when read by name, the text itself in passthrough. */
  | 'json'
  /** Anything else, selected as text. */
  | 'text';

export interface ColumnPlan {
  name: string;
  kind: ColumnKind;
  /** The select expression. */
  select: string;
}

const FLOATS = new Set<number>([builtins.INT2, builtins.INT4, builtins.INT8, builtins.FLOAT4, builtins.FLOAT8, builtins.NUMERIC]);

/** Each column's kind and select expression, from the types the source reports for it. */
export function planColumns(fields: ReadonlyArray<{ name: string; dataTypeID: number }>, keyColumn: string, timeColumn: string): ColumnPlan[] {
  return fields.map(({ name, dataTypeID: oid }) => {
    const q = quoteIdent(name);
    if (name === keyColumn) return { name, kind: 'key', select: `${q}::int8` };
    if (oid === builtins.TIMESTAMP) return { name, kind: 'timestamp', select: q };
    if (oid === builtins.TIMESTAMPTZ) return { name, kind: 'timestamptz', select: q };
    if (name === timeColumn) return { name, kind: 'timestamp', select: `${q}::timestamp` };
    if (FLOATS.has(oid)) return { name, kind: 'float', select: `${q}::float8` };
    if (oid === builtins.BOOL) return { name, kind: 'bool', select: q };
    if (oid === builtins.JSON || oid === builtins.JSONB) return { name, kind: 'json', select: `${q}::text` };
    return { name, kind: 'text', select: `${q}::text` };
  });
}

/** One column of a sub-batch. `nulls[i]` is 1 where row i is NULL. */
export interface Column {
  plan: ColumnPlan;
  nulls: Uint8Array;
  /** float: the values. */
  f64: Float64Array;
  /** key, timestamp, timestamptz: 8 big-endian bytes per row, as COPY binary carries them. */
  raw: Buffer;
  /** A DataView over raw. */
  rawView: DataView;
  /** bool: 0 or 1. */
  u8: Uint8Array;
  /** text, json. */
  text: Array<string | null>;
}

/** A sub-batch of rows, column by column; reused from one sub-batch to the next. */
export class ColumnBatch {
  readonly columns: Column[];
  length = 0;

  constructor(
    readonly plans: ColumnPlan[],
    readonly capacity: number,
  ) {
    this.columns = plans.map((plan) => {
      const raw = plan.kind === 'key' || plan.kind === 'timestamp' || plan.kind === 'timestamptz' ? Buffer.alloc(capacity * 8) : Buffer.alloc(0);
      return {
        plan,
        nulls: new Uint8Array(capacity),
        f64: plan.kind === 'float' ? new Float64Array(capacity) : new Float64Array(0),
        raw,
        rawView: new DataView(raw.buffer, raw.byteOffset, raw.byteLength),
        u8: plan.kind === 'bool' ? new Uint8Array(capacity) : new Uint8Array(0),
        text: plan.kind === 'text' || plan.kind === 'json' ? new Array<string | null>(capacity).fill(null) : [],
      };
    });
  }

  column(name: string): Column {
    const c = this.columns.find((col) => col.plan.name === name);
    if (!c) throw new Error(`no column ${name} in the batch`);
    return c;
  }
}

/** Microseconds from the Unix epoch to PostgreSQL's (2000-01-01). */
const PG_EPOCH_US = 946_684_800_000_000;

/** A raw 8-byte value as a number (exact up to 2^53). */
export function int64At(raw: Buffer, i: number): number {
  return raw.readInt32BE(i * 8) * 4_294_967_296 + raw.readUInt32BE(i * 8 + 4);
}

/** The same, from a column's DataView (faster in loops). */
export function int64Of(view: DataView, i: number): number {
  return view.getInt32(i * 8) * 4_294_967_296 + view.getUint32(i * 8 + 4);
}

/** The exact decimal text of a raw 8-byte integer. */
export function int64Text(raw: Buffer, i: number): string {
  const n = int64At(raw, i);
  return Number.isSafeInteger(n) ? String(n) : String(raw.readBigInt64BE(i * 8));
}

/** A timestamp's text as PostgreSQL prints it in a UTC session: `2024-01-05 12:34:56[.5]` (`+00` with a zone). */
export function timestampText(raw: Buffer, i: number, zone: boolean): string {
  const pgUs = int64At(raw, i);
  if (pgUs >= 9.2e18) return 'infinity';
  if (pgUs <= -9.2e18) return '-infinity';
  const us = pgUs + PG_EPOCH_US;
  const seconds = Math.floor(us / 1e6);
  const micros = us - seconds * 1e6;
  const iso = new Date(seconds * 1000).toISOString();
  const fraction = micros ? `.${String(micros).padStart(6, '0').replace(/0+$/, '')}` : '';
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction}${zone ? '+00' : ''}`;
}

/** A column's value at row i as JSON text (passthrough): what JSON.stringify of valueAt would give. */
export function jsonAt(c: Column, i: number): string {
  if (c.nulls[i]) return 'null';
  switch (c.plan.kind) {
    case 'float':
      return Number.isFinite(c.f64[i]) ? String(c.f64[i]) : 'null';
    case 'key':
      return String(int64At(c.raw, i));
    case 'bool':
      return c.u8[i] === 1 ? 'true' : 'false';
    case 'json':
      return c.text[i]!;
    default:
      return JSON.stringify(valueAt(c, i));
  }
}

/** A column's value at row i, as the feature mapper, drift accounting and passthrough read it. */
export function valueAt(c: Column, i: number): unknown {
  if (c.nulls[i]) return null;
  switch (c.plan.kind) {
    case 'float':
      return c.f64[i];
    case 'key':
      return int64At(c.raw, i);
    case 'timestamp':
      return timestampText(c.raw, i, false);
    case 'timestamptz':
      return timestampText(c.raw, i, true);
    case 'bool':
      return c.u8[i] === 1;
    case 'json':
      return JSON.parse(c.text[i]!);
    case 'text':
      return c.text[i];
  }
}

/** A record at one position of whatever sub-batch `holder.batch` holds. */
export interface RowView {
  readonly [field: string]: unknown;
}

/**
 * `count` row views over `holder.batch`: view i reads row i of the batch the holder points
 * at, through a getter per column (no per-row fields, no per-row parsing).
 */
export function rowViews(plans: ColumnPlan[], holder: { batch: ColumnBatch }, count: number): RowView[] {
  class View {
    constructor(readonly i: number) {}
  }
  plans.forEach((plan, k) => {
    const get =
      plan.kind === 'float'
        ? function (this: View) {
            const c = holder.batch.columns[k];
            return c.nulls[this.i] ? null : c.f64[this.i];
          }
        : plan.kind === 'text'
          ? function (this: View) {
              // copyColumns leaves a NULL's text slot as it was (an earlier row's value).
              const c = holder.batch.columns[k];
              return c.nulls[this.i] ? null : c.text[this.i];
            }
          : function (this: View) {
              return valueAt(holder.batch.columns[k], this.i);
            };
    Object.defineProperty(View.prototype, plan.name, { get, enumerable: true });
  });
  return Array.from({ length: count }, (_, i) => new View(i) as unknown as RowView);
}

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * Reads `COPY (sql) TO STDOUT (FORMAT binary)` on `client` into `batch`, calling `onBatch`
 * each time it holds `batch.capacity` rows and once at the end (when it holds any); the
 * stream waits while onBatch runs. `race` wraps each read, so a lost connection fails it.
 */
export async function copyColumns(
  client: pg.PoolClient,
  sql: string,
  batch: ColumnBatch,
  onBatch: (batch: ColumnBatch) => Promise<void>,
  race: <T>(p: Promise<T>) => Promise<T> = (p) => p,
): Promise<number> {
  const stream = client.query(copyTo(`COPY (${sql}) TO STDOUT (FORMAT binary)`));
  const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let pending: Buffer | null = null;
  let headerDone = false;
  let total = 0;
  let ended = false;
  const columns = batch.columns;
  const width = columns.length;
  batch.length = 0;
  try {
    for (;;) {
      const next = await race(chunks.next());
      if (next.done) break;
      const buf: Buffer = pending ? Buffer.concat([pending, next.value]) : next.value;
      pending = null;
      let at = 0;
      if (!headerDone) {
        if (buf.length < 19) {
          pending = buf;
          continue;
        }
        if (!buf.subarray(0, 11).equals(SIGNATURE)) throw new Error('COPY binary: unexpected signature');
        at = 19 + buf.readUInt32BE(15);
        headerDone = true;
      }
      const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      const size = buf.length;
      while (at + 2 <= size) {
        const fields = dv.getInt16(at);
        if (fields === -1) {
          ended = true;
          at += 2;
          break;
        }
        if (fields !== width) throw new Error(`COPY binary: a row of ${fields} fields, expected ${width}`);
        // Is the whole row here? Walk its lengths first.
        let end = at + 2;
        let complete = true;
        for (let f = 0; f < width; f++) {
          if (end + 4 > size) {
            complete = false;
            break;
          }
          const len = dv.getInt32(end);
          end += 4 + (len > 0 ? len : 0);
          if (end > size) {
            complete = false;
            break;
          }
        }
        if (!complete) break;
        const row = batch.length;
        let p = at + 2;
        for (let f = 0; f < width; f++) {
          const len = dv.getInt32(p);
          p += 4;
          const c = columns[f];
          if (len < 0) {
            c.nulls[row] = 1;
            continue;
          }
          c.nulls[row] = 0;
          switch (c.plan.kind) {
            case 'float':
              c.f64[row] = dv.getFloat64(p);
              break;
            case 'key':
            case 'timestamp':
            case 'timestamptz':
              c.rawView.setInt32(row * 8, dv.getInt32(p));
              c.rawView.setInt32(row * 8 + 4, dv.getInt32(p + 4));
              break;
            case 'bool':
              c.u8[row] = buf[p];
              break;
            default:
              c.text[row] = buf.toString('utf8', p, p + len);
          }
          p += len;
        }
        at = end;
        batch.length++;
        total++;
        if (batch.length === batch.capacity) {
          await onBatch(batch);
          batch.length = 0;
        }
      }
      if (at < buf.length) pending = buf.subarray(at);
    }
    if (!ended) throw new Error('COPY binary: the stream ended without its trailer');
    if (batch.length > 0) await onBatch(batch);
    batch.length = 0;
    return total;
  } finally {
    if (!ended) stream.destroy();
  }
}
