// A monitor run, started by the monitor's Temporal Schedule (src/monitoring/monitors.ts):
// profile the period before the scheduled time against the model's reference profile, set
// the search attributes as a batch run does, and alert when the verdict is drifted. The
// activities read and write the data; the workflow passes ids and the window only.
import { log, proxyActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { MonitorRunResult } from '../src/monitoring/monitor-run.ts';
import type { AlertOutcome } from '../src/monitoring/alerts.ts';
import { ALERT_ACTIVITY_OPTIONS, alertFailure } from './alert-options.ts';
import { DRIFT, JOB, MODEL_NAME, MODEL_VERSION, SCHEDULED_START_TIME } from './search-attributes.ts';

export interface MonitorRunArgs {
  monitorId: string;
  /** The period: each run profiles [scheduled time - everyMs, scheduled time). */
  everyMs: number;
}

const { profileMonitorWindow } = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
});

const { sendDriftAlert } = proxyActivities<Activities>(ALERT_ACTIVITY_OPTIONS);

export async function monitorRun(args: MonitorRunArgs): Promise<MonitorRunResult & { alert?: AlertOutcome | { sent: false; reason: string } }> {
  const info = workflowInfo();
  const scheduled = info.typedSearchAttributes.get(SCHEDULED_START_TIME);
  const end = (scheduled ? new Date(scheduled) : info.startTime).getTime();
  const window = { from: new Date(end - args.everyMs).toISOString(), to: new Date(end).toISOString() };
  upsertSearchAttributes([{ key: JOB, value: args.monitorId }]);
  const result = await profileMonitorWindow({ monitorId: args.monitorId, window, runId: info.firstExecutionRunId, workflowId: info.workflowId });
  upsertSearchAttributes([
    { key: MODEL_NAME, value: result.model.name },
    { key: MODEL_VERSION, value: result.model.version },
    ...(result.drift ? [{ key: DRIFT, value: result.drift.drifted ? 'drifted' : 'stable' }] : []),
  ]);
  if (!result.drift?.drifted) return result;
  try {
    return { ...result, alert: await sendDriftAlert({ runId: result.runId }) };
  } catch (err) {
    // The verdict stands without its alert: the run records it, the report and the gauges have it.
    const reason = alertFailure(err);
    log.warn('drift alert not sent', { runId: result.runId, reason });
    return { ...result, alert: { sent: false, reason } };
  }
}
