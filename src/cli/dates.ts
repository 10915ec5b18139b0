// Date arguments of the CLI (--from, --to): YYYY-MM, YYYY-MM-DD or an ISO timestamp, in UTC.
import { UsageError } from './context.ts';

const ISO_DATE = /^(\d{4})-(\d{2})(?:-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?)?$/i;

/** A --from/--to value. Only ISO forms: Date alone reads "1" as 2001 and rolls 2024-02-30 over to March. */
export function parseDate(option: string, value: string): Date {
  const parts = ISO_DATE.exec(value);
  const [year, month, day] = parts ? [Number(parts[1]), Number(parts[2]), Number(parts[3] ?? 1)] : [0, 0, 0];
  const realDay = parts !== null && month >= 1 && month <= 12 && day >= 1 && new Date(Date.UTC(year, month - 1, day)).getUTCDate() === day;
  const date = realDay ? new Date(/^\d{4}-\d{2}$/.test(value) ? `${value}-01T00:00:00Z` : /^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value) : new Date(NaN);
  if (Number.isNaN(date.getTime())) throw new UsageError(`${option} must be a date (YYYY-MM, YYYY-MM-DD or ISO timestamp), got ${JSON.stringify(value)}`);
  return date;
}
