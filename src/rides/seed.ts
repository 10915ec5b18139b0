// `mldeploy data seed`: bulk-loads deterministic synthetic rides for one month with COPY.
// Seeding a month again replaces that month's rides.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import type { Pool } from '../db/pool.ts';
import { quoteTable } from '../batch/job.ts';
import { generateRides, rideIdBase, rideToCsvLine, RIDE_COLUMNS } from './synthetic.ts';

export interface SeedOptions {
  rows: number;
  /** Target table (default rides); it must have the rides columns. */
  table?: string;
  month: string;
  seed?: number;
}

function* csvLines(opts: SeedOptions, batch = 2000): Generator<string> {
  let lines: string[] = [];
  for (const ride of generateRides(opts)) {
    lines.push(rideToCsvLine(ride));
    if (lines.length === batch) {
      yield lines.join('\n') + '\n';
      lines = [];
    }
  }
  if (lines.length) yield lines.join('\n') + '\n';
}

export async function seedRides(pool: Pool, opts: SeedOptions): Promise<number> {
  const base = rideIdBase(opts.month); // validates the month
  if (!Number.isSafeInteger(opts.rows) || opts.rows < 1) throw new Error(`--rows must be a positive integer, got ${opts.rows}`);
  const table = quoteTable(opts.table ?? 'rides');
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`DELETE FROM ${table} WHERE ride_id > $1 AND ride_id <= $2`, [base, base + 9_999_999]);
    const columns = RIDE_COLUMNS.map((c) => `"${c}"`).join(', ');
    const copy = client.query(copyFrom(`COPY ${table} (${columns}) FROM STDIN WITH (FORMAT csv)`));
    await pipeline(Readable.from(csvLines(opts)), copy);
    await client.query('COMMIT');
    await client.query(`ANALYZE ${table}`);
    return opts.rows;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
