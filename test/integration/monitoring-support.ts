// Shared by the monitor tests: trigger a monitor's schedule as `mldeploy schedule trigger`
// does and wait for the run it starts.
import type { Client } from '@temporalio/client';
import type { Pool } from '../../src/db/pool.ts';
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
