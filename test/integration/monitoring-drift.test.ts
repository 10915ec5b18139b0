// Drift of batch runs on a real Temporal dev server and PostgreSQL: a month like the
// reference is stable, a month with trip_distance ×1.5 and another PU/DO mix drifts on exactly
// those features, PSI equals one computed here from the rows with SQL, and a chunk retried
// after its write counts once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBatchRun } from '../../src/batch/client.ts';
import type { BatchJobInput } from '../../src/batch/job.ts';
import { ModelCache } from '../../src/registry/runtime.ts';
import { buildProfile } from '../../src/monitoring/build.ts';
import { saveProfile } from '../../src/monitoring/store.ts';
import type { DriftReport } from '../../src/monitoring/drift.ts';
import type { Profile } from '../../src/monitoring/profile.ts';
import { DRIFT } from '../../workflows/search-attributes.ts';
import { RIDE_COLUMNS } from '../../src/demo.ts';
import { openTestEnv, registerExample, startTestWorker, uniqueName, type TestEnv } from '../helpers.ts';
import { ridesTable, spawnWorker, waitUntil, workerFailingAfterWrite } from './batch-support.ts';
import { progressQuery } from '../../workflows/batch-scoring.ts';

let env: TestEnv;
let model: { name: string; version: number };
let view: string;
/** March's drift from an undisturbed run, for the exactly-once comparisons. */
let marchClean: DriftReport;
const ROWS = 20_000;
const month = (m: string) => ({ from: `2024-${m}-01T00:00:00Z`, to: m === '12' ? '2025-01-01T00:00:00Z' : `2024-${String(Number(m) + 1).padStart(2, '0')}-01T00:00:00Z` });

beforeAll(async () => {
  env = await openTestEnv();
  model = await registerExample(env, 'trip-duration');
  // January is the reference; February is like it; March has longer trips and another
  // PU/DO mix; April only longer trips.
  const tables = await ridesTable(env.pool, { '2024-01': ROWS, '2024-02': ROWS, '2024-03': ROWS, '2024-04': ROWS });
  view = tables.view;
  await env.pool.query(`UPDATE ${tables.table} SET trip_distance = trip_distance * 1.5 WHERE lpep_pickup_datetime >= '2024-03-01' AND lpep_pickup_datetime < '2024-05-01'`);
  await env.pool.query(
    `UPDATE ${tables.table} SET "PULocationID" = ("PULocationID" * 7) % 265 + 1, "DOLocationID" = ("DOLocationID" * 11) % 265 + 1
     WHERE lpep_pickup_datetime >= '2024-03-01' AND lpep_pickup_datetime < '2024-04-01'`,
  );
  const models = new ModelCache(env.store, 1);
  const loaded = await models.get(model);
  await saveProfile(
    env.pool,
    model,
    await buildProfile(env.pool, loaded, { kind: 'table', table: view, timestampColumn: 'lpep_pickup_datetime', actualColumn: 'duration', ...month('01') }),
  );
  await models.release();
});
afterAll(async () => env?.close());

function job(window: { from: string; to: string }): BatchJobInput {
  return {
    name: uniqueName('drift'),
    model: `${model.name}@production`,
    source: { table: view, ...RIDE_COLUMNS, actualColumn: 'duration' },
    window,
    chunkSize: 6_000,
    parallelism: 2,
  };
}

async function runDrift(runId: string): Promise<{ drift: DriftReport; reference: Profile; drifted: boolean }> {
  const { rows } = await env.pool.query('SELECT drift, reference, drifted FROM batch_runs WHERE run_id = $1', [runId]);
  return rows[0];
}

const SHARE_FLOOR = 1e-4;
function independentPsi(reference: number[], current: number[]): number {
  const total = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
  const [rt, ct] = [total(reference), total(current)];
  let sum = 0;
  reference.forEach((r, i) => {
    const rs = Math.max(r / rt, SHARE_FLOOR);
    const cs = Math.max(current[i] / ct, SHARE_FLOOR);
    sum += (cs - rs) * Math.log(cs / rs);
  });
  return sum;
}

/** The month's bin counts, computed here in SQL on the reference's edges and categories. */
async function sqlCounts(reference: Profile, window: { from: string; to: string }) {
  const distance = reference.features.find((f) => f.name === 'trip_distance')!;
  const pudo = reference.features.find((f) => f.name === 'PU_DO')!;
  if (distance.kind !== 'numeric' || pudo.kind !== 'categorical') throw new Error('unexpected profile kinds');
  const where = `lpep_pickup_datetime >= $1 AND lpep_pickup_datetime < $2`;
  const numeric = await env.pool.query(
    `SELECT width_bucket(trip_distance, $3::float8[]) AS bin, count(*)::int AS n FROM ${view} WHERE ${where} AND trip_distance IS NOT NULL GROUP BY 1`,
    [window.from, window.to, distance.edges],
  );
  const distanceCounts = distance.counts.map(() => 0);
  for (const r of numeric.rows) distanceCounts[r.bin] = r.n;
  const categorical = await env.pool.query(
    `SELECT coalesce(array_position($3::text[], "PULocationID" || '_' || "DOLocationID") - 1, $4) AS bin, count(*)::int AS n
     FROM ${view} WHERE ${where} AND "PULocationID" IS NOT NULL AND "DOLocationID" IS NOT NULL GROUP BY 1`,
    [window.from, window.to, pudo.categories, pudo.categories.length],
  );
  const pudoCounts = pudo.counts.map(() => 0);
  for (const r of categorical.rows) pudoCounts[r.bin] += r.n;
  return { distance: independentPsi(distance.counts, distanceCounts), pudo: independentPsi(pudo.counts, pudoCounts) };
}

const psiOf = (drift: DriftReport, name: string) => drift.features.find((f) => f.name === name)!;

/** The same counts give the same shares, PSI and tests; means are sums in another order when the chunks differ. */
function expectSameDrift(actual: DriftReport, expected: DriftReport): void {
  const exact = (d: DriftReport) => [...d.features, d.prediction].map(({ mean, ...rest }) => ({ ...rest, hasMean: mean !== null }));
  expect(exact(actual)).toEqual(exact(expected));
  [...actual.features, actual.prediction].forEach((f, i) => expect(f.mean?.current ?? 0).toBeCloseTo([...expected.features, expected.prediction][i].mean?.current ?? 0, 9));
  expect(actual.quality!.rmse).toBeCloseTo(expected.quality!.rmse, 9);
  expect(actual.quality!.mae).toBeCloseTo(expected.quality!.mae, 9);
}

describe('batch drift against a reference profile', () => {
  it('flags the shifted months on the shifted features only, with PSI equal to an independent computation', async () => {
    const worker = await startTestWorker(env);
    try {
      const results: Record<string, { summary: Awaited<ReturnType<Awaited<ReturnType<typeof startBatchRun>>['result']>>; attribute: unknown }> = {};
      for (const m of ['02', '03', '04']) {
        const handle = await startBatchRun(env.client, worker.taskQueue, job(month(m)));
        const summary = await handle.result();
        results[m] = { summary, attribute: (await handle.describe()).typedSearchAttributes.get(DRIFT) };
      }

      const feb = await runDrift(results['02'].summary.runId);
      expect(results['02'].summary.drift).toMatchObject({ drifted: false, features: [] });
      expect(feb.drifted).toBe(false);
      expect(results['02'].attribute).toBe('stable');
      for (const f of feb.drift.features) expect(f.psi).toBeLessThan(0.05);

      const mar = await runDrift(results['03'].summary.runId);
      marchClean = mar.drift;
      expect(results['03'].summary.drift).toMatchObject({ drifted: true, driftedShare: 1 });
      expect(results['03'].summary.drift!.features.sort()).toEqual(['PU_DO', 'trip_distance']);
      expect(results['03'].attribute).toBe('drifted');
      expect(mar.drift.prediction.psi).toBeGreaterThan(10 * feb.drift.prediction.psi);

      const apr = await runDrift(results['04'].summary.runId);
      expect(results['04'].summary.drift!.features).toEqual(['trip_distance']);
      expect(psiOf(apr.drift, 'PU_DO').drifted).toBe(false);
      expect(psiOf(apr.drift, 'PU_DO').psi).toBeLessThan(0.05);

      for (const [m, run] of [
        ['02', feb],
        ['03', mar],
        ['04', apr],
      ] as const) {
        const expected = await sqlCounts(run.reference, month(m));
        expect(Math.abs(psiOf(run.drift, 'trip_distance').psi - expected.distance)).toBeLessThan(1e-6);
        expect(Math.abs(psiOf(run.drift, 'PU_DO').psi - expected.pudo)).toBeLessThan(1e-6);
        expect(run.drift.rows).toBe(ROWS);
      }
      expect(mar.drift.quality!.rmse).toBeCloseTo(results['03'].summary.stats!.rmse!, 6);
      expect(mar.drift.quality!.mae).toBeGreaterThan(0);
      expect(psiOf(mar.drift, 'trip_distance').test).toMatchObject({ test: 'ks' });
      expect(psiOf(mar.drift, 'trip_distance').test.pValue).toBeLessThan(1e-6);
      expect(psiOf(mar.drift, 'PU_DO').test).toMatchObject({ test: 'chi-square' });
    } finally {
      await worker.stop();
    }
  });

  it('counts a chunk retried after its write once: the same drift as a clean run', async () => {
    const taskQueue = uniqueName('tq');
    const failing = await workerFailingAfterWrite(env, taskQueue);
    try {
      const retried = await failing.worker.runUntil(async () => (await startBatchRun(env.client, taskQueue, job(month('03')))).result());
      expect(failing.injected()).toBeGreaterThanOrEqual(3);
      const drift = (await runDrift(retried.runId)).drift;
      expect(drift.rows).toBe(ROWS);
      expectSameDrift(drift, marchClean);
    } finally {
      await failing.release();
    }
  });

  it('gives a run whose worker process was SIGKILLed the same drift as a clean run', async () => {
    const taskQueue = uniqueName('tq');
    const first = await spawnWorker(env, taskQueue);
    const handle = await startBatchRun(env.client, taskQueue, { ...job(month('03')), chunkSize: 2_000 });
    await waitUntil('two chunks done', async () => ((await handle.query(progressQuery).catch(() => undefined))?.chunksDone ?? 0) >= 2);
    first.child.kill('SIGKILL');
    await first.exited;
    const second = await spawnWorker(env, taskQueue);
    try {
      const summary = await handle.result();
      expect(summary.rowsScored + summary.rowsRejected).toBe(ROWS);
      const drift = (await runDrift(summary.runId)).drift;
      expect(drift.rows).toBe(ROWS);
      expectSameDrift(drift, marchClean);
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  });
});
