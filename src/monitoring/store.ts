// Where monitoring keeps its data: reference profiles with their model version
// (model_profiles), and each run's reference copy and drift report: batch runs in
// batch_runs, monitor runs (online and stream traffic) in monitor_runs.
import type { Pool } from '../db/pool.ts';
import type { DriftReport } from './drift.ts';
import type { Profile } from './profile.ts';

export async function saveProfile(pool: Pool, model: { name: string; version: number }, profile: Profile): Promise<void> {
  await pool.query(
    `INSERT INTO model_profiles (name, version, profile, source) VALUES ($1, $2, $3, $4)
     ON CONFLICT (name, version) DO UPDATE SET profile = EXCLUDED.profile, source = EXCLUDED.source, created_at = now()`,
    [model.name, model.version, JSON.stringify(profile), profile.source],
  );
}

export async function loadProfile(pool: Pool, model: { name: string; version: number }): Promise<Profile | null> {
  const { rows } = await pool.query('SELECT profile FROM model_profiles WHERE name = $1 AND version = $2', [model.name, model.version]);
  return rows[0]?.profile ?? null;
}

export interface RunDrift {
  /** A batch run, or a monitor run over a period of online or stream traffic. */
  kind: 'batch' | 'monitor';
  runId: string;
  workflowId: string;
  /** The batch job, or the monitor's id. */
  job: string;
  model: { name: string; version: number };
  window: { from: string; to: string };
  status: string;
  rowsRead: number;
  rowsScored: number;
  rowsRejected: number;
  finishedAt: string | null;
  drift: DriftReport | null;
  /** Why there is no drift report, when there is none. */
  hasReference: boolean;
}

export class UnknownRunError extends Error {
  override name = 'UnknownRunError';
}

/** A batch or monitor run's summary and drift report, by run id or workflow id. */
export async function loadRunDrift(pool: Pool, runId: string): Promise<RunDrift> {
  const { rows } = await pool.query(
    `(SELECT 'batch' AS kind, run_id, workflow_id, job, model_name, model_version, window_start, window_end, status, rows_read, rows_scored, rows_rejected,
             finished_at, drift, reference IS NOT NULL AS has_reference, started_at
      FROM batch_runs WHERE run_id = $1 OR workflow_id = $1)
     UNION ALL
     (SELECT 'monitor', run_id, workflow_id, monitor_id, model_name, model_version, window_start, window_end, status, rows_read, rows_read, 0,
             finished_at, drift, reference IS NOT NULL, started_at
      FROM monitor_runs WHERE run_id = $1 OR workflow_id = $1)
     ORDER BY started_at DESC LIMIT 1`,
    [runId],
  );
  const r = rows[0];
  if (!r) throw new UnknownRunError(`no batch or monitor run ${runId} (give the runId or workflowId of a score summary or a monitor run)`);
  return {
    kind: r.kind,
    runId: r.run_id,
    workflowId: r.workflow_id,
    job: r.job,
    model: { name: r.model_name, version: r.model_version },
    window: { from: new Date(r.window_start).toISOString(), to: new Date(r.window_end).toISOString() },
    status: r.status,
    rowsRead: Number(r.rows_read),
    rowsScored: Number(r.rows_scored),
    rowsRejected: Number(r.rows_rejected),
    finishedAt: r.finished_at ? new Date(r.finished_at).toISOString() : null,
    drift: r.drift,
    hasReference: r.has_reference,
  };
}
