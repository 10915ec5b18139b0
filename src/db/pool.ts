import pg from 'pg';

export type Pool = pg.Pool;

// BIGINT and NUMERIC come back as strings by default; ids and money in this project fit
// in a double, so parse them as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => Number(v));
// TIMESTAMP (without time zone) holds UTC in this project; read it as UTC whatever TZ says.
pg.types.setTypeParser(pg.types.builtins.TIMESTAMP, (v) => new Date(`${v.replace(' ', 'T')}Z`));

export function createPool(connectionString: string, max = 10): Pool {
  // Sessions run in UTC, so timestamp and timestamptz columns compare alike with ISO windows.
  const pool = new pg.Pool({ connectionString, max, options: '-c timezone=UTC' });
  // An idle client losing its server (a restart) must not crash the process; the next
  // query gets a fresh connection.
  pool.on('error', () => {});
  return pool;
}
