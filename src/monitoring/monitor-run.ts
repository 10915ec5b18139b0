// One monitor run: the last period's predictions of a monitored model, read from the
// prediction log (web traffic, logged or sampled) or from the stream consumers' samples,
// counted into the version's reference profile bins exactly as a batch chunk counts its rows
// (DriftAccumulator), then the same drift report, gauges and verdict as a batch run. The
// report is stored in monitor_runs, where GET /v1/runs/{runId}/report finds it.
import Cursor from 'pg-cursor';
import type { Pool } from '../db/pool.ts';
import type { ModelCache } from '../registry/runtime.ts';
import { recordRunDrift } from '../observability/batch-metrics.ts';
import { computeDrift, DEFAULT_THRESHOLDS, summarizeDrift, type DriftSummary, type DriftThresholds } from './drift.ts';
import { DriftAccumulator } from './histograms.ts';
import { LOG_SOURCE, type MonitorSource } from './sampling.ts';
import { loadProfile } from './store.ts';
import { recordMonitorRun } from './metrics.ts';

const READ_BATCH = 4096;
/** Samples older than this many periods of the monitor are deleted by its runs. */
export const SAMPLE_RETENTION_PERIODS = 24;

export interface Monitor {
  monitorId: string;
  modelName: string;
  modelRef: string;
  source: MonitorSource;
  everyMs: number;
  webhookUrl: string | null;
  /** The verdicts' thresholds (`--psi-threshold`, `--drift-share`; the defaults where not given). */
  thresholds: DriftThresholds;
  createdAt: string;
}

export class MonitorError extends Error {
  override name = 'MonitorError';
}

export async function loadMonitor(pool: Pool, monitorId: string): Promise<Monitor> {
  const { rows } = await pool.query('SELECT * FROM monitors WHERE monitor_id = $1', [monitorId]);
  if (!rows[0]) throw new MonitorError(`no monitor ${monitorId} (list them with mldeploy monitor list)`);
  return toMonitor(rows[0]);
}

export function toMonitor(r: Record<string, unknown>): Monitor {
  return {
    monitorId: r.monitor_id as string,
    modelName: r.model_name as string,
    modelRef: r.model_ref as string,
    source: r.source as MonitorSource,
    everyMs: Number(r.every_ms),
    webhookUrl: (r.webhook_url as string | null) ?? null,
    thresholds: {
      psi: r.psi_threshold == null ? DEFAULT_THRESHOLDS.psi : Number(r.psi_threshold),
      share: r.drift_share == null ? DEFAULT_THRESHOLDS.share : Number(r.drift_share),
    },
    createdAt: new Date(r.created_at as string).toISOString(),
  };
}

export interface MonitorRunInput {
  monitorId: string;
  runId: string;
  workflowId: string;
  window: { from: string; to: string };
}

export interface MonitorRunResult {
  runId: string;
  monitorId: string;
  model: { name: string; version: number };
  window: { from: string; to: string };
  /** 'finished' with a drift report, or 'no-data' when the window held no prediction of the version. */
  status: 'finished' | 'no-data';
  rows: number;
  drift?: DriftSummary;
}

/** Profiles the window of one monitor run; a retry starts over and replaces the run's row. */
export async function runMonitor(pool: Pool, models: ModelCache, input: MonitorRunInput, heartbeat: () => void = () => {}): Promise<MonitorRunResult> {
  const monitor = await loadMonitor(pool, input.monitorId);
  const version = await models.resolver.resolve(monitor.modelRef);
  const model = await models.get(version);
  const ref = `${version.name}@${version.version}`;
  const reference = await loadProfile(pool, version);
  if (!reference) {
    throw new MonitorError(
      `model ${ref} (${monitor.modelRef}) has no reference profile: build one with mldeploy models profile ${ref} --source <table> --from … --to … (or --csv, --run)`,
    );
  }
  const modelId = { name: version.name, version: version.version };
  await pool.query(
    `INSERT INTO monitor_runs (run_id, workflow_id, monitor_id, model_name, model_version, source, window_start, window_end, status, reference)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running', $9)
     ON CONFLICT (run_id) DO UPDATE SET status = 'running', reference = EXCLUDED.reference, drift = NULL, drifted = NULL, rows_read = 0, finished_at = NULL`,
    [input.runId, input.workflowId, monitor.monitorId, modelId.name, modelId.version, monitor.source, input.window.from, input.window.to, JSON.stringify(reference)],
  );

  const accumulator = new DriftAccumulator(reference, model);
  const client = await pool.connect();
  try {
    // Rows of v2 tensor requests are logged by input tensor, not by field: only rows holding the model's fields are read.
    const cursor = client.query(
      new Cursor(
        `SELECT features, prediction FROM prediction_log
         WHERE model_name = $1 AND model_version = $2 AND source = $3 AND predicted_at >= $4 AND predicted_at < $5 AND features ?| $6::text[]`,
        [modelId.name, modelId.version, LOG_SOURCE[monitor.source], input.window.from, input.window.to, model.mapper.requiredFields()],
      ),
    );
    for (;;) {
      const rows: Array<{ features: Record<string, unknown>; prediction: number }> = await cursor.read(READ_BATCH);
      if (rows.length === 0) break;
      for (const r of rows) accumulator.add(r.features, r.prediction, undefined);
      heartbeat();
    }
    await cursor.close();
  } finally {
    client.release();
  }

  const partial = accumulator.result();
  const report = partial.rows > 0 ? computeDrift(reference, partial, [], monitor.thresholds) : null;
  const status = report ? 'finished' : 'no-data';
  await pool.query('UPDATE monitor_runs SET status = $2, rows_read = $3, drift = $4, drifted = $5, finished_at = now() WHERE run_id = $1', [
    input.runId,
    status,
    partial.rows,
    report && JSON.stringify(report),
    report?.drifted ?? null,
  ]);
  if (report) recordRunDrift({ job: monitor.monitorId, model: modelId }, report);
  recordMonitorRun(monitor.monitorId, modelId.name, { status, drifted: report?.drifted ?? null, rows: partial.rows, windowEnd: input.window.to });
  // Samples are bounded: what no later run of this monitor reads goes.
  await pool.query(`DELETE FROM prediction_log WHERE sampled AND model_name = $1 AND source = $2 AND predicted_at < $3::timestamptz - $4 * interval '1 millisecond'`, [
    modelId.name,
    LOG_SOURCE[monitor.source],
    input.window.to,
    SAMPLE_RETENTION_PERIODS * monitor.everyMs,
  ]);
  return {
    runId: input.runId,
    monitorId: monitor.monitorId,
    model: modelId,
    window: input.window,
    status,
    rows: partial.rows,
    ...(report ? { drift: summarizeDrift(report) } : {}),
  };
}
