// Shared by the monitor tests: the rides they judge (a January reference, a March shifted
// from it), and triggering a monitor's schedule as `mldeploy schedule trigger` does, waiting
// for the run it starts.
import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool.ts';
import { buildProfile } from '../../src/monitoring/build.ts';
import { saveProfile } from '../../src/monitoring/store.ts';
import { ModelCache } from '../../src/registry/runtime.ts';
import type { ModelStore, ModelVersion } from '../../src/registry/store.ts';
import type { AlertOutcome } from '../../src/monitoring/alerts.ts';
import type { MonitorRunResult } from '../../src/monitoring/monitor-run.ts';
import { DRIFT } from '../../workflows/search-attributes.ts';
import { waitFor } from './serve-support.ts';

/**
 * Triggers the monitor's schedule once the second of the models' last logged prediction is
 * over (scheduled times have whole seconds, and a run's window ends at its scheduled time),
 * and waits for the run the trigger started (not an hourly one).
 */
export async function triggerMonitorRun(client: Client, pool: Pool, monitorId: string, modelNames: string[]) {
  const last = (await pool.query('SELECT max(predicted_at) AS at FROM prediction_log WHERE model_name = ANY($1)', [modelNames])).rows[0].at as Date;
  await waitFor(() => Date.now() > Math.ceil((last.getTime() + 1) / 1000) * 1000, 'the next second');
  const schedule = client.schedule.getHandle(monitorId);
  const before = (await schedule.describe()).info.recentActions.length;
  await schedule.trigger();
  let workflowId = '';
  await waitFor(async () => {
    const actions = (await schedule.describe()).info.recentActions;
    workflowId = actions.length > before ? actions.at(-1)!.action.workflow.workflowId : '';
    return workflowId !== '';
  }, `a run of ${monitorId}`);
  const handle = client.workflow.getHandle(workflowId);
  const result = (await handle.result()) as MonitorRunResult & { alert?: AlertOutcome };
  return { result, attribute: (await handle.describe()).typedSearchAttributes.get(DRIFT), workflowId };
}

/** March's rides in the rides table: longer trips and another PU/DO mix, as in the batch drift test. */
export async function shiftMarch(pool: Pool, table: string): Promise<void> {
  await pool.query(
    `UPDATE ${table} SET trip_distance = trip_distance * 1.5, "PULocationID" = ("PULocationID" * 7) % 265 + 1, "DOLocationID" = ("DOLocationID" * 11) % 265 + 1
     WHERE lpep_pickup_datetime >= '2024-03-01'`,
  );
}

/** Gives each model a reference profile of January's rides in `view`. */
export async function profileJanuary(env: { pool: Pool; store: ModelStore }, view: string, models: Array<Pick<ModelVersion, 'name' | 'version'>>): Promise<void> {
  const cache = new ModelCache(env.store, 1);
  try {
    for (const model of models) {
      const source = { kind: 'table', table: view, timestampColumn: 'lpep_pickup_datetime', from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00Z' } as const;
      await saveProfile(env.pool, model, await buildProfile(env.pool, await cache.get(model), source));
    }
  } finally {
    await cache.release();
  }
}
