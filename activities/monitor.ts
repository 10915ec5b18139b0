// Monitoring activities: profile a monitor run's window (src/monitoring/monitor-run.ts) and
// send a drifted run's alert (src/monitoring/alerts.ts), for monitor and batch runs alike.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { PermanentAlertError, sendDriftAlert as sendAlert, type AlertOutcome, type MonitoringSettings } from '../src/monitoring/alerts.ts';
import { MonitorError, runMonitor, type MonitorRunInput, type MonitorRunResult } from '../src/monitoring/monitor-run.ts';
import { ProfileError } from '../src/monitoring/profile.ts';
import { ModelNotFoundError } from '../src/registry/store.ts';
import { RefError } from '../src/registry/refs.ts';
import type { ActivityDeps } from './deps.ts';

/** No webhook, links to the default web service address: what a worker without monitoring settings uses. */
export const NO_ALERTS: Pick<MonitoringSettings, 'publicUrl' | 'alertWebhookUrl' | 'alertHosts'> = {
  publicUrl: 'http://127.0.0.1:9696',
  alertWebhookUrl: undefined,
  alertHosts: undefined,
};

export function createMonitorActivities({ pool, models, monitoring = NO_ALERTS }: ActivityDeps) {
  return {
    async profileMonitorWindow(input: MonitorRunInput): Promise<MonitorRunResult> {
      try {
        const activity = Context.current();
        return await runMonitor(pool, models, input, () => activity.heartbeat());
      } catch (err) {
        if (err instanceof MonitorError || err instanceof ProfileError || err instanceof ModelNotFoundError || err instanceof RefError) {
          throw ApplicationFailure.nonRetryable(err.message, err.name);
        }
        throw err;
      }
    },

    /** Sends the run's drift alert once; a failure the webhook can fix by coming back is retried by the caller's policy. */
    async sendDriftAlert(input: { runId: string }): Promise<AlertOutcome> {
      try {
        return await sendAlert(pool, monitoring, input.runId);
      } catch (err) {
        if (err instanceof PermanentAlertError) throw ApplicationFailure.nonRetryable(err.message, err.name);
        throw err;
      }
    },
  };
}
