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
    target: table.default('predictions'),
    chunkSize: z.number().int().min(100).max(1_000_000).default(50_000),
    parallelism: z.number().int().min(1).max(64).default(4),
    /** Chunks one workflow run schedules before it continues as new, bounding its history. */
    chunksPerRun: z.number().int().min(1).max(2000).default(500),
    /** Drift verdicts (docs/monitoring.md), when the model version has a reference profile. */
    drift: z
      .object({ psi: z.number().positive().max(10).default(0.2), share: z.number().gt(0).max(1).default(0.5) })
      .strict()
      .default({ psi: 0.2, share: 0.5 }),
  })
  .strict()
  .refine((j) => j.window || j.period, { message: 'give either window {from, to} or period (hour, day, month)' })
  .refine((j) => !j.window || Date.parse(j.window.from) < Date.parse(j.window.to), { message: 'window.from must be before window.to' });

export type BatchJobInput = z.input<typeof BatchJobSchema>;
export type BatchJob = z.output<typeof BatchJobSchema>;

export function parseJob(input: unknown): BatchJob {
  const parsed = BatchJobSchema.safeParse(input);
  if (!parsed.success) {
    throw new JobError(`invalid job: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(job)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}
