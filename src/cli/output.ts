// How list commands print: an aligned table for people by default, JSON with `-o json` or
// `--json` (an array of objects, the same fields under their own names).
import { Option, type Command } from 'commander';
import { UsageError } from './context.ts';

export interface OutputFlags {
  output?: string;
  json?: boolean;
}

/** Adds -o/--output and --json to a list command. */
export function withOutputOptions(command: Command): Command {
  return command.addOption(new Option('-o, --output <format>', 'table or json').choices(['table', 'json'])).option('--json', 'the same as -o json');
}

const cell = (value: unknown): string =>
  value === null || value === undefined ? '' : value instanceof Date ? value.toISOString() : typeof value === 'object' ? JSON.stringify(value) : String(value);

/** Columns as wide as their widest cell, headers in capitals, two spaces between columns. */
export function formatTable(rows: readonly Record<string, unknown>[]): string {
  const columns = Object.keys(rows[0] ?? {});
  const cells = [columns.map((c) => c.toUpperCase()), ...rows.map((row) => columns.map((c) => cell(row[c])))];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => line[i].length)));
  return cells.map((line) => line.map((text, i) => (i === line.length - 1 ? text : text.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}

/** Prints rows as a table (or `empty` when there are none), or as JSON. */
export function printList(rows: readonly Record<string, unknown>[], flags: OutputFlags, empty: string): void {
  if (flags.output && flags.json && flags.output !== 'json') throw new UsageError('--json and -o table contradict each other');
  if (flags.json || flags.output === 'json') process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
  else process.stdout.write(rows.length === 0 ? `${empty}\n` : formatTable(rows));
}
