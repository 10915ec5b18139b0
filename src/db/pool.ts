import pg from 'pg';

export type Pool = pg.Pool;

// BIGINT and NUMERIC come back as strings by default; ids and money in this project fit
// in a double, so parse them as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => Number(v));
// TIMESTAMP (without time zone) holds UTC in this project; read it as UTC whatever TZ says.
pg.types.setTypeParser(pg.types.builtins.TIMESTAMP, (v) => new Date(`${v.replace(' ', 'T')}Z`));

export function createPool(connectionString: string, max = 10, applicationName = 'mldeploy'): Pool {
  // Sessions run in UTC, so timestamp and timestamptz columns compare alike with ISO windows.
  const pool = new pg.Pool({ connectionString, max, options: '-c timezone=UTC', application_name: applicationName });
  // A client losing its server (a restart, a dropped connection) must not crash the
  // process: an idle one is discarded by the pool, a checked-out one fails its next query
  // (so the activity using it is retried), and the pool never hands out a dead client again.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}
