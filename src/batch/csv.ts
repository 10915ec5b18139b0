// Rows for COPY … FROM STDIN (FORMAT csv). Only text needs quoting; numbers never do.

export function csvText(value: string): string {
  return /[",\n\r]/.test(value) || value === '' ? `"${value.replace(/"/g, '""')}"` : value;
}

/** null and undefined become the empty field, which COPY csv reads as NULL. */
export function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  if (value instanceof Date) return value.toISOString();
  return csvText(typeof value === 'string' ? value : JSON.stringify(value));
}
