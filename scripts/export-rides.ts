/**
 * Write synthetic rides as CSV (with a header) to stdout.
 *
 *   npx tsx scripts/export-rides.ts --rows N --month YYYY-MM [--seed S]
 */
import { parseArgs } from 'node:util';
import { generateRides, rideToCsvLine, RIDE_COLUMNS } from '../src/rides/synthetic.ts';

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: export-rides --rows N --month YYYY-MM [--seed S]\n`);
  process.exit(2);
}

function parseIntArg(name: string, value: string | undefined, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) usage(`--${name} is required`);
    return fallback;
  }
  if (!/^-?\d+$/.test(value)) usage(`--${name} must be an integer, got "${value}"`);
  return Number(value);
}

async function main(): Promise<void> {
  let values: { rows?: string; month?: string; seed?: string };
  try {
    ({ values } = parseArgs({
      options: { rows: { type: 'string' }, month: { type: 'string' }, seed: { type: 'string' } },
      strict: true,
    }));
  } catch (err) {
    usage((err as Error).message);
  }
  const rows = parseIntArg('rows', values.rows);
  const seed = parseIntArg('seed', values.seed, 1);
  if (!values.month) usage('--month is required');
  const month = values.month;

  const out = process.stdout;
  // a closed pipe (e.g. `| head`) is a normal way to stop reading
  out.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  let buf = RIDE_COLUMNS.join(',') + '\n';
  try {
    for (const ride of generateRides({ rows, month, seed })) {
      buf += rideToCsvLine(ride) + '\n';
      if (buf.length > 1 << 16) {
        if (!out.write(buf)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
        buf = '';
      }
    }
  } catch (err) {
    usage((err as Error).message);
  }
  if (buf) out.write(buf);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
