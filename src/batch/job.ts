// A batch scoring job: which model scores which rows of which table, into which table.
// Every table and column name is validated as an identifier and quoted; values are bound
// as parameters, never spliced into SQL.
import { z } from 'zod';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export class JobError extends Error {
  override name = 'JobError';
}

export function quoteIdent(name: string): string {
  if (!IDENTIFIER.test(name)) throw new JobError(`invalid SQL identifier ${JSON.stringify(name)}: use letters, digits and _ (at most 63), not starting with a digit`);
  return `"${name}"`;
}

/** A table name, optionally schema-qualified (`schema.table`). */
export function quoteTable(name: string): string {
  const parts = name.split('.');
  if (parts.length > 2) throw new JobError(`invalid table name ${JSON.stringify(name)}`);
  return parts.map(quoteIdent).join('.');
}

const ident = z.string().regex(IDENTIFIER, 'must be an SQL identifier (letters, digits, _)');
/** An identifier without a default, with an error that says what to give when it is missing. */
const requiredIdent = (missing: string) =>
  z.string({ error: (issue) => (issue.input === undefined ? missing : undefined) }).regex(IDENTIFIER, 'must be an SQL identifier (letters, digits, _)');
const table = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/, 'must be a table name (schema.table or table)');
/** YYYY-MM-DD, optionally with a time and a zone (UTC when absent), naming a real day. */
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;
const isoTime = z.string().refine((s) => {
  const m = ISO_TIME.exec(s);
  if (!m) return false;
  const day = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return day.getUTCMonth() === Number(m[2]) - 1 && day.getUTCDate() === Number(m[3]) && !Number.isNaN(Date.parse(s.includes('T') || s.length === 10 ? s : s.replace(' ', 'T')));
}, 'must be an ISO date or timestamp (YYYY-MM-DD[THH:MM[:SS][Z|±HH:MM]])');

/** What mldeploy writes per prediction; a target mapping names a column for each it wants. */
export const TARGET_FIELDS = ['entity_id', 'prediction', 'actual', 'event_time', 'passthrough', 'label', 'probabilities', 'job', 'model_name', 'model_version', 'run_id'] as const;
export type TargetField = (typeof TARGET_FIELDS)[number];

/** One column of a target table and what it receives: a field of TARGET_FIELDS, or a source column's value. */
export type TargetColumn = { column: string; field: TargetField; source?: undefined } | { column: string; field?: undefined; source: string };

interface SourceColumns {
  idColumn: string;
  timestampColumn: string;
  actualColumn?: string;
  passthrough: string[];
}

function targetColumnsProblem(target: string, mapping: Record<string, string>, source: SourceColumns): string | undefined {
  if (target === 'predictions') return 'give a target table of your own with targetColumns (predictions has a fixed layout)';
  const readable = new Set([source.idColumn, source.timestampColumn, ...(source.actualColumn ? [source.actualColumn] : []), ...source.passthrough]);
  const unknown = Object.keys(mapping).filter((k) => !(TARGET_FIELDS as readonly string[]).includes(k) && !readable.has(k));
  if (unknown.length) return `unknown key(s) ${unknown.join(', ')}: use ${TARGET_FIELDS.join(', ')} or a column the job reads from its source`;
  const columns = Object.values(mapping);
  const twice = columns.filter((c, i) => columns.indexOf(c) !== i);
  if (twice.length) return `column(s) ${[...new Set(twice)].join(', ')} receive more than one value`;
  if (!('entity_id' in mapping) && !(source.idColumn in mapping)) return `map the entity key: entity_id (or ${source.idColumn}) to a column of the target`;
  if (!('prediction' in mapping)) return 'map prediction to a column of the target';
  return undefined;
}

/**
 * The target's columns and what each receives. A source key of the id, timestamp or actual
 * column means the same as entity_id, event_time or actual. Without a mapping: today's full
 * layout, column for column (label and probabilities are not in it).
 */
export function targetColumns(job: BatchJob): TargetColumn[] {
  if (!job.targetColumns) {
    return (['entity_id', 'prediction', 'actual', 'event_time', 'passthrough', 'job', 'model_name', 'model_version', 'run_id'] as const).map((field) => ({ column: field, field }));
  }
  const { idColumn, timestampColumn, actualColumn } = job.source;
  return Object.entries(job.targetColumns).map(([key, column]): TargetColumn => {
    if ((TARGET_FIELDS as readonly string[]).includes(key)) return { column, field: key as TargetField };
    if (key === idColumn) return { column, field: 'entity_id' };
    if (key === timestampColumn) return { column, field: 'event_time' };
    if (key === actualColumn) return { column, field: 'actual' };
    return { column, source: key };
  });
}

export const PERIODS = ['hour', 'day', 'month'] as const;
export type Period = (typeof PERIODS)[number];

export const BatchJobSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'must be letters, digits, ., _ or -'),
    model: z.string().min(1),
    source: z
      .object({
        table,
        /** The integer key column: predictions are keyed by it. No default: every table names its own. */
        idColumn: requiredIdent("give the source's integer key column (--id-column)"),
        /** The column a window or period applies to. */
        timestampColumn: requiredIdent('give the column the window applies to (--timestamp-column)'),
        actualColumn: ident.optional(),
        passthrough: z.array(ident).max(64).default([]),
      })
      .strict(),
    /** A fixed window [from, to). Without it, `period` before the scheduled time is scored. */
    window: z.object({ from: isoTime, to: isoTime }).strict().optional(),
    period: z.enum(PERIODS).optional(),
    /** `predictions` (the lean layout), or a table of the user's own. */
    target: table.default('predictions'),
    /**
     * A target table of the user's own: which of its columns receive what (see TARGET_FIELDS),
     * for example { entity_id: 'id', prediction: 'predicted_duration' }. A key may also be a
     * source column the job reads (idColumn, timestampColumn, actualColumn or a passthrough
     * column), whose value is copied. Without it, a target other than `predictions` has
     * today's full layout (created when missing).
     */
    targetColumns: z.record(ident, ident).optional(),
    /** Store a classifier's class probabilities beside its label (a real[] per row). */
    probabilities: z.boolean().default(false),
    chunkSize: z.number().int().min(100).max(1_000_000).default(50_000),
    parallelism: z.number().int().min(1).max(64).default(4),
    /** Chunks one workflow run schedules before it continues as new, bounding its history. */
    chunksPerRun: z.number().int().min(1).max(2000).default(500),
    /**
     * Drift verdicts (docs/monitoring.md), when the model version has a reference profile, and
     * the webhook a drifted run of this job alerts instead of MLDEPLOY_ALERT_WEBHOOK_URL (its
     * host must be in MLDEPLOY_CALLBACK_HOSTS, checked when a run starts).
     */
    drift: z
      .object({
        psi: z.number().positive().max(10).default(0.2),
        share: z.number().gt(0).max(1).default(0.5),
        webhook: z
          .string()
          .max(2048)
          .refine((url) => /^https?:\/\/\S+$/i.test(url) && URL.canParse(url), 'must be an http:// or https:// URL')
          .optional(),
      })
      .strict()
      .default({ psi: 0.2, share: 0.5 }),
  })
  .strict()
  .refine((j) => j.window || j.period, { message: 'give either window {from, to} or period (hour, day, month)' })
  .refine((j) => !j.window || Date.parse(j.window.from) < Date.parse(j.window.to), { message: 'window.from must be before window.to' })
  .superRefine((j, ctx) => {
    if (!j.targetColumns) return;
    const problem = targetColumnsProblem(j.target, j.targetColumns, j.source);
    if (problem) ctx.addIssue({ code: 'custom', path: ['targetColumns'], message: problem });
  });

export type BatchJobInput = z.input<typeof BatchJobSchema>;
export type BatchJob = z.output<typeof BatchJobSchema>;

export function parseJob(input: unknown): BatchJob {
  const parsed = BatchJobSchema.safeParse(input);
  if (!parsed.success) {
    throw new JobError(`invalid job: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(job)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}
