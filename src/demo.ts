// The shipped example: what `mldeploy dev` sets up on first start (the example models, demo
// rides and a monthly scoring schedule like the course's, `0 3 2 * *`), and the ride-specific
// settings that generic code leaves to its caller (the rides' id and timestamp columns).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScheduleAlreadyRunning, type Client } from '@temporalio/client';
import type { Pool } from './db/pool.ts';
import { registerModel } from './registry/register.ts';
import type { ModelStore } from './registry/store.ts';
import { seedRides } from './rides/seed.ts';
import { createBatchSchedule } from './batch/client.ts';
import type { BatchJobInput } from './batch/job.ts';
import type { ModelCache } from './registry/runtime.ts';
import { buildProfile } from './monitoring/build.ts';
import { loadProfile, saveProfile } from './monitoring/store.ts';

export const MODELS_DIR = fileURLToPath(new URL('../models/', import.meta.url));
export const EXAMPLE_MODELS = ['trip-duration', 'fare', 'tip'] as const;
export const DEMO_MONTHS = ['2024-01', '2024-02'];
export const DEMO_ROWS_PER_MONTH = 20_000;
export const DEMO_SCHEDULE_ID = 'trip-duration-monthly';

/** The example rides' key and time columns (the `rides` table and the `ride_durations` view). */
export const RIDE_COLUMNS = { idColumn: 'ride_id', timestampColumn: 'lpep_pickup_datetime' } as const;

/** The course's monthly job: score the previous month's rides with their actual durations. */
export const DEMO_JOB: BatchJobInput = {
  name: 'trip-duration-monthly',
  model: 'trip-duration@production',
  source: { table: 'ride_durations', ...RIDE_COLUMNS, actualColumn: 'duration', passthrough: ['PULocationID', 'DOLocationID'] },
  period: 'month',
};

export type ExampleModel = (typeof EXAMPLE_MODELS)[number];

/** An example model's ONNX bytes and spec, as shipped in models/. */
export function readExampleModel(name: ExampleModel): { bytes: Buffer; spec: unknown } {
  return {
    bytes: fs.readFileSync(path.join(MODELS_DIR, `${name}.onnx`)),
    spec: JSON.parse(fs.readFileSync(path.join(MODELS_DIR, `${name}.spec.json`), 'utf8')),
  };
}

/** Registers each example model that has no version yet, as `production`. */
export async function ensureExampleModels(store: ModelStore, maxBytes: number): Promise<string[]> {
  const present = new Set((await store.list()).map((v) => v.name));
  const added: string[] = [];
  for (const name of EXAMPLE_MODELS) {
    if (present.has(name)) continue;
    await registerModel(store, { name, ...readExampleModel(name), alias: 'production', maxBytes });
    added.push(name);
  }
  return added;
}

export async function ensureDemoRides(pool: Pool): Promise<number> {
  const { rows } = await pool.query('SELECT EXISTS (SELECT 1 FROM rides) AS seeded');
  if (rows[0].seeded) return 0;
  for (const month of DEMO_MONTHS) await seedRides(pool, { rows: DEMO_ROWS_PER_MONTH, month });
  return DEMO_MONTHS.length * DEMO_ROWS_PER_MONTH;
}

export async function ensureDemoSchedule(client: Client, taskQueue: string): Promise<void> {
  try {
    await createBatchSchedule(client, { scheduleId: DEMO_SCHEDULE_ID, cron: '0 3 2 * *', job: DEMO_JOB, taskQueue });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
}

/** One request to POST /predict with the course's example ride, as a line to print. */
export async function demoPrediction(url: string, token?: string): Promise<string> {
  const ride = { PULocationID: 10, DOLocationID: 50, trip_distance: 40 };
  const res = await fetch(`${url}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(ride),
  });
  return `POST /predict ${JSON.stringify(ride)} → ${res.status} ${await res.text()}`;
}

/** Each example model's actual column in ride_durations, profiled beside its predictions. */
const EXAMPLE_ACTUALS: Record<ExampleModel, string> = { 'trip-duration': 'duration', fare: 'fare_amount', tip: 'tip_amount' };

/** Gives each example model's production version a reference profile, from the first demo month (its "training period"). */
export async function ensureExampleProfiles(pool: Pool, store: ModelStore, models: ModelCache): Promise<string[]> {
  const [month] = DEMO_MONTHS;
  const from = new Date(`${month}-01T00:00:00Z`);
  const to = new Date(from);
  to.setUTCMonth(to.getUTCMonth() + 1);
  const built: string[] = [];
  for (const name of EXAMPLE_MODELS) {
    const version = await store.resolve(`${name}@production`);
    if (await loadProfile(pool, version)) continue;
    const model = await models.get(version);
    const source = { kind: 'table', table: 'ride_durations', timestampColumn: RIDE_COLUMNS.timestampColumn, from: from.toISOString(), to: to.toISOString() } as const;
    await saveProfile(pool, version, await buildProfile(pool, model, { ...source, actualColumn: EXAMPLE_ACTUALS[name] }));
    built.push(`${name}@${version.version}`);
  }
  return built;
}
