// Helpers for batch tests: a private rides table per test, and mldeploy worker processes.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { Worker } from '@temporalio/worker';
import type { Pool } from '../../src/db/pool.ts';
import { createBatchActivities } from '../../activities/batch.ts';
import { createMonitorActivities } from '../../activities/monitor.ts';
import { ModelCache } from '../../src/registry/runtime.ts';
import { WORKFLOWS_PATH } from '../../src/worker.ts';
import { seedRides } from '../../src/rides/seed.ts';
import { uniqueName, type TestEnv } from '../helpers.ts';
import type { BatchJobInput } from '../../src/batch/job.ts';
import { RIDE_COLUMNS } from '../../src/demo.ts';

/** A job scoring `source` (a rides view) with `model` over January 2024, with the actual duration and two passthrough columns. */
export function januaryJob(model: string, source: string, extra: Partial<BatchJobInput> = {}): BatchJobInput {
  return {
    name: uniqueName('job'),
    model: `${model}@production`,
    source: { table: source, ...RIDE_COLUMNS, actualColumn: 'duration', passthrough: ['PULocationID', 'DOLocationID'] },
    window: { from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00Z' },
    chunkSize: 10_000,
    parallelism: 2,
    ...extra,
  };
}

/** A rides table of its own (plus a duration view), seeded with the given months. */
export async function ridesTable(pool: Pool, months: Record<string, number>): Promise<{ table: string; view: string }> {
  const table = uniqueName('rides').replace(/-/g, '_');
  const view = `${table}_d`;
  await pool.query(`CREATE TABLE ${table} (LIKE rides INCLUDING ALL)`);
  for (const [month, rows] of Object.entries(months)) await seedRides(pool, { rows, month, table });
  await pool.query(`CREATE VIEW ${view} AS SELECT r.*, extract(epoch FROM (lpep_dropoff_datetime - lpep_pickup_datetime)) / 60.0 AS duration FROM ${table} r`);
  return { table, view };
}

export interface WorkerProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
}

/** Starts `mldeploy worker` in its own process against the test's Temporal and database. */
export async function spawnWorker(env: TestEnv, taskQueue: string): Promise<WorkerProcess> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-worker-'));
  const child = spawn(process.execPath, ['bin/mldeploy.js', 'worker'], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: env.temporalAddress,
      DATABASE_URL: env.databaseUrl,
      MLDEPLOY_TASK_QUEUE: taskQueue,
      MLDEPLOY_DATA_DIR: dataDir,
      MLDEPLOY_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then((code) => {
    if (code !== 0 && code !== null) process.stderr.write(`WORKER EXIT ${code}: ${stderr}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => String(d).includes('worker polling') && resolve());
    void exited.then((code) => reject(new Error(`worker exited (${code}) before polling: ${stderr}`)));
  });
  return { child, exited };
}

export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * An in-process worker whose every chunk fails once at the worst moment: after its rows are
 * committed, before the activity completes. `injected()` counts the failures; `release()` frees its models.
 */
export async function workerFailingAfterWrite(env: TestEnv, taskQueue: string) {
  const models = new ModelCache(env.store, 1);
  const real = createBatchActivities({ pool: env.pool, store: env.store, models });
  let injected = 0;
  const worker = await Worker.create({
    connection: env.connection,
    taskQueue,
    workflowsPath: WORKFLOWS_PATH,
    activities: {
      ...real,
      // A drifted run sends its alert (none configured here: the activity answers 'no webhook').
      ...createMonitorActivities({ pool: env.pool, store: env.store, models }),
      async scoreBatchChunk(input: Parameters<typeof real.scoreBatchChunk>[0]) {
        const counts = await real.scoreBatchChunk(input);
        if (Context.current().info.attempt === 1) {
          injected++;
          throw new Error('injected failure after the write');
        }
        return counts;
      },
    },
  });
  return { worker, injected: () => injected, release: () => models.release() };
}
