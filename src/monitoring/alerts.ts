// Drift alerts: a drifted run (batch or monitor) POSTs its summary and report link to a
// webhook: a monitor's own (--webhook), a batch job's own (drift.webhook) or
// MLDEPLOY_ALERT_WEBHOOK_URL. The host must be allowed by
// MLDEPLOY_CALLBACK_HOSTS, as decision callbacks' are. One alert per run verdict: the body
// and the Idempotency-Key header carry `drift:<runId>`, and drift_alerts records the send,
// so a retried activity whose earlier attempt was answered 2xx does not send again.
import type { Pool } from '../db/pool.ts';
import type { Config } from '../config.ts';
import { callbackRefusal } from '../streaming/callback.ts';
import { summarizeDrift, type DriftSummary } from './drift.ts';
import { reportUrl } from './run-report.ts';
import { loadRunDrift, type RunDrift } from './store.ts';

export type MonitoringSettings = Config['monitoring'];

/** The webhook's JSON body: the run (batch or monitor), its verdict and the report link. */
export interface DriftAlert extends Pick<RunDrift, 'kind' | 'runId' | 'workflowId' | 'job' | 'model' | 'window'> {
  type: 'mldeploy.drift';
  idempotencyKey: string;
  rows: number;
  drift: DriftSummary;
  report: string;
}

export type AlertOutcome = { sent: true; url: string; status: number; repeated: boolean } | { sent: false; reason: string };

/** A webhook failure that retrying cannot fix (refused host, a 4xx other than 408 and 429). */
export class PermanentAlertError extends Error {
  override name = 'PermanentAlertError';
}

/** Why the webhook may not be called, or undefined. */
export function webhookRefusal(url: string, hosts: readonly string[] | undefined): string | undefined {
  if (!/^https?:\/\//i.test(url)) return `webhook ${url} is not an http:// or https:// URL`;
  return callbackRefusal(url, hosts) && `webhook host ${new URL(url).hostname} is not in MLDEPLOY_CALLBACK_HOSTS`;
}

export const alertKey = (runId: string) => `drift:${runId}`;

/** Sends a run's drift alert when the run drifted and a webhook is configured. Throws to be retried. */
export async function sendDriftAlert(pool: Pool, settings: Pick<MonitoringSettings, 'publicUrl' | 'alertWebhookUrl' | 'alertHosts'>, runId: string): Promise<AlertOutcome> {
  const run = await loadRunDrift(pool, runId);
  if (!run.drift) return { sent: false, reason: `run ${run.runId} has no drift report` };
  if (!run.drift.drifted) return { sent: false, reason: `run ${run.runId} did not drift` };
  let url = settings.alertWebhookUrl;
  if (run.kind === 'monitor') {
    const { rows } = await pool.query('SELECT webhook_url FROM monitors WHERE monitor_id = $1', [run.job]);
    url = rows[0]?.webhook_url ?? url;
  } else {
    const { rows } = await pool.query('SELECT alert_webhook_url FROM batch_runs WHERE run_id = $1', [run.runId]);
    url = rows[0]?.alert_webhook_url ?? url;
  }
  if (!url) return { sent: false, reason: 'no webhook: set MLDEPLOY_ALERT_WEBHOOK_URL, or give the monitor --webhook or the batch job drift.webhook' };
  const refusal = webhookRefusal(url, settings.alertHosts);
  if (refusal) throw new PermanentAlertError(refusal);

  const key = alertKey(run.runId);
  const { rows } = await pool.query(
    `INSERT INTO drift_alerts (run_id, url, attempts) VALUES ($1, $2, 1)
     ON CONFLICT (run_id) DO UPDATE SET attempts = drift_alerts.attempts + CASE WHEN drift_alerts.sent_at IS NULL THEN 1 ELSE 0 END, url = EXCLUDED.url
     RETURNING sent_at, status`,
    [run.runId, url],
  );
  if (rows[0].sent_at) return { sent: true, url, status: rows[0].status, repeated: true };

  const alert: DriftAlert = {
    type: 'mldeploy.drift',
    idempotencyKey: key,
    kind: run.kind,
    runId: run.runId,
    workflowId: run.workflowId,
    job: run.job,
    model: run.model,
    window: run.window,
    rows: run.drift.rows,
    drift: summarizeDrift(run.drift),
    report: reportUrl(settings.publicUrl, run.runId),
  };
  let status: number;
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(alert),
      signal: AbortSignal.timeout(10_000),
    });
    status = response.status;
    await response.body?.cancel();
  } catch (err) {
    await pool.query('UPDATE drift_alerts SET last_error = $2 WHERE run_id = $1', [run.runId, (err as Error).message]);
    throw new Error(`drift alert webhook ${url} could not be reached: ${(err as Error).message}`);
  }
  if (status >= 200 && status < 300) {
    await pool.query('UPDATE drift_alerts SET status = $2, sent_at = now(), last_error = NULL WHERE run_id = $1', [run.runId, status]);
    return { sent: true, url, status, repeated: false };
  }
  const message = `drift alert webhook ${url} answered HTTP ${status}`;
  await pool.query('UPDATE drift_alerts SET status = $2, last_error = $3 WHERE run_id = $1', [run.runId, status, message]);
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) throw new PermanentAlertError(message);
  throw new Error(message);
}
