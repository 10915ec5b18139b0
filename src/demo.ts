// What `mldeploy dev` sets up on first start: the example models, demo rides and a
// monthly scoring schedule like the course's (`0 3 2 * *`).
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

export const MODELS_DIR = fileURLToPath(new URL('../models/', import.meta.url));
export const EXAMPLE_MODELS = ['trip-duration', 'fare', 'tip'] as const;
export const DEMO_MONTHS = ['2024-01', '2024-02'];
export const DEMO_ROWS_PER_MONTH = 20_000;
export const DEMO_SCHEDULE_ID = 'trip-duration-monthly';

/** The course's monthly job: score the previous month's rides with their actual durations. */
export const DEMO_JOB: BatchJobInput = {
  name: 'trip-duration-monthly',
  model: 'trip-duration@production',
  source: { table: 'ride_durations', actualColumn: 'duration', passthrough: ['PULocationID', 'DOLocationID'] },
  period: 'month',
};

/** Registers each example model that has no version yet, as `production`. */
export async function ensureExampleModels(store: ModelStore, maxBytes: number): Promise<string[]> {
  const present = new Set((await store.list()).map((v) => v.name));
  const added: string[] = [];
  for (const name of EXAMPLE_MODELS) {
    if (present.has(name)) continue;
    const bytes = fs.readFileSync(path.join(MODELS_DIR, `${name}.onnx`));
    const spec = JSON.parse(fs.readFileSync(path.join(MODELS_DIR, `${name}.spec.json`), 'utf8'));
    await registerModel(store, { name, bytes, spec, alias: 'production', maxBytes });
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
