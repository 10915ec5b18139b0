// The drift alert activity's options, shared by the workflows that alert (batchScoring,
// monitorRun). Bounded: a webhook that stays down or refuses costs a run about seven minutes,
// then the run ends without its alert (the verdict is in its row, report and gauges).
import type { ActivityOptions } from '@temporalio/workflow';

export const ALERT_ACTIVITY_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 8, nonRetryableErrorTypes: ['PermanentAlertError'] },
};

/** The reason an alert activity failed, for the run's result and log. */
export function alertFailure(err: unknown): string {
  return err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
}
