// Migration 012 on a database holding today's layout: a predictions table with rows of runs
// that batch_runs knows and of one it has lost. The rows move into batch_predictions, the
// view answers with the old columns, and a new run of the job replaces its migrated rows.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../src/db/pool.ts';
import { migrate } from '../../src/db/migrate.ts';
import { parseJob } from '../../src/batch/job.ts';
import { finalizeRun, planRun, scoreChunk } from '../../src/batch/scorer.ts';
import { ModelStore } from '../../src/registry/store.ts';
import { registerModel } from '../../src/registry/register.ts';
import { ModelCache } from '../../src/registry/runtime.ts';
import { readExampleModel, RIDE_COLUMNS } from '../../src/demo.ts';
import { seedRides } from '../../src/rides/seed.ts';
import { openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';

const MIGRATIONS = path.resolve('src/db/migrations');
const JANUARY = { from: '2024-01-01T00:00:00.000Z', to: '2024-02-01T00:00:00.000Z' };

let env: TestEnv;
let pool: Pool;
let database: string;

beforeAll(async () => {
  env = await openTestEnv();
  database = uniqueName('migrate').replace(/-/g, '_');
  await env.pool.query(`CREATE DATABASE ${database}`);
  const url = new URL(env.databaseUrl);
  url.pathname = `/${database}`;
  pool = createPool(url.toString(), 4, 'mldeploy-test');
});

afterAll(async () => {
  await pool?.end();
  await env.pool.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await env.close();
});

/** The schema as it was before 012: migrations 001 to 011, recorded as applied. */
async function migrateUpTo011(): Promise<void> {
  await pool.query('CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
  const files = fs
    .readdirSync(MIGRATIONS)
    .filter((f) => /^\d+_.+\.sql$/.test(f) && f < '012')
    .sort();
  expect(files.at(-1)).toMatch(/^011_/);
  for (const file of files) {
    await pool.query(fs.readFileSync(path.join(MIGRATIONS, file), 'utf8'));
    await pool.query('INSERT INTO schema_migrations (version) VALUES ($1)', [file]);
  }
}

const OLD_COLUMNS = 'job, entity_id, prediction, actual, event_time, passthrough, model_name, model_version, run_id';

describe('migration 012 (lean predictions)', () => {
  it('moves predictions of the old layout into batch_predictions behind a view with the old columns', async () => {
    await migrateUpTo011();
    expect((await pool.query("SELECT relkind FROM pg_class WHERE oid = to_regclass('predictions')")).rows).toEqual([{ relkind: 'r' }]);
    await pool.query(
      `INSERT INTO batch_runs (run_id, workflow_id, job, model_name, model_version, source, target, window_start, window_end, status, started_at, finished_at)
       VALUES ('run-a', 'batch-old', 'old-job', 'trip-duration', 3, 'rides', 'predictions', $1, $2, 'succeeded', '2024-02-01 03:00:00+00', '2024-02-01 03:01:00+00')`,
      [JANUARY.from, JANUARY.to],
    );
    // Run a's rows (keys 1 to 500, in January 2024), and two rows of a run batch_runs no longer has.
    await pool.query(
      `INSERT INTO predictions (${OLD_COLUMNS}, scored_at)
       SELECT 'old-job', id, 10 + id % 7, CASE WHEN id % 2 = 0 THEN 11 END, timestamp '2024-01-05 10:00:00' + (id % 1000) * interval '1 minute',
              CASE WHEN id % 3 = 0 THEN jsonb_build_object('PULocationID', id % 265) END, 'trip-duration', 3, 'run-a', '2024-02-01 03:00:30+00'
       FROM generate_series(1, 500) id`,
    );
    await pool.query(
      `INSERT INTO predictions (${OLD_COLUMNS}) VALUES
         ('lost-job', 7, 1.5, NULL, '2023-06-01 00:00:00', NULL, 'fare', 1, 'run-lost'),
         ('lost-job', 8, 2.5, 3, '2023-06-02 00:00:00', '{"a": 1}', 'fare', 1, 'run-lost')`,
    );
    const before = (await pool.query(`SELECT ${OLD_COLUMNS} FROM predictions ORDER BY job, entity_id`)).rows;
    expect(before).toHaveLength(502);

    const applied = await migrate(pool);
    expect(applied[0]).toMatch(/^012_/);

    expect((await pool.query("SELECT relkind FROM pg_class WHERE oid = to_regclass('predictions')")).rows).toEqual([{ relkind: 'v' }]);
    expect((await pool.query('SELECT count(*)::int AS n FROM batch_predictions')).rows[0].n).toBe(502);
    const after = (await pool.query(`SELECT ${OLD_COLUMNS} FROM predictions ORDER BY job, entity_id`)).rows;
    expect(after).toEqual(before);
    // The lost run has a run row of its own; the known run's scored_at is its finish time.
    const lost = await pool.query("SELECT job, model_name, model_version, status, rows_scored::int, window_start, window_end FROM batch_runs WHERE run_id = 'run-lost'");
    expect(lost.rows).toEqual([
      {
        job: 'lost-job',
        model_name: 'fare',
        model_version: 1,
        status: 'migrated',
        rows_scored: 2,
        window_start: new Date('2023-06-01T00:00:00Z'),
        window_end: new Date('2023-06-02T00:00:00Z'),
      },
    ]);
    const scoredAt = await pool.query("SELECT DISTINCT scored_at FROM predictions WHERE run_id = 'run-a'");
    expect(scoredAt.rows).toEqual([{ scored_at: new Date('2024-02-01T03:01:00Z') }]);
    // Running it again changes nothing.
    expect(await migrate(pool)).toEqual([]);
  });

  it('a run of the migrated job replaces its migrated rows in the window, and the view shows both runs apart', async () => {
    const store = new ModelStore(pool);
    const model = await registerModel(store, { name: 'trip-duration', ...readExampleModel('trip-duration'), alias: 'production', maxBytes: 64 * 1024 * 1024 });
    await pool.query('CREATE TABLE rides_m (LIKE rides INCLUDING ALL)');
    await seedRides(pool, { rows: 2_000, month: '2024-01', table: 'rides_m' });
    // Old rows for the first 100 of these rides, written by run-a of old-job.
    await pool.query(
      `INSERT INTO batch_predictions (run_key, entity_id, prediction, event_time)
       SELECT (SELECT run_key FROM batch_runs WHERE run_id = 'run-a'), ride_id, -1, lpep_pickup_datetime FROM rides_m ORDER BY ride_id LIMIT 100`,
    );
    const models = new ModelCache(store, 1);
    try {
      const loaded = await models.get(await store.resolve(`${model.name}@production`));
      const job = parseJob({ name: 'old-job', model: 'trip-duration', source: { table: 'rides_m', ...RIDE_COLUMNS }, window: JANUARY, chunkSize: 500 });
      const ctx = { runId: 'run-new', workflowId: 'batch-new', job, window: JANUARY, model: { name: model.name, version: model.version } };
      const plan = await planRun(pool, ctx, loaded);
      for (let c = 0; c < plan.chunks; c++) await scoreChunk(pool, ctx, c, loaded);
      expect((await finalizeRun(pool, ctx)).rowsScored).toBe(2_000);
    } finally {
      await models.release();
    }
    const byRun = await pool.query(
      `SELECT run_id, count(*)::int AS n, min(prediction) > 0 AS positive FROM predictions WHERE job = 'old-job' AND entity_id IN (SELECT ride_id FROM rides_m) GROUP BY run_id`,
    );
    expect(byRun.rows).toEqual([{ run_id: 'run-new', n: 2_000, positive: true }]);
    // run-a's rows outside the new run's keys stay.
    expect((await pool.query("SELECT count(*)::int AS n FROM predictions WHERE run_id = 'run-a'")).rows[0].n).toBe(500);
  });
});
