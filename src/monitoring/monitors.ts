// Monitors of online and stream traffic: `mldeploy monitor create|list|delete`. A monitor is
// a row in `monitors` (which the web service and the consumers read to know which models to
// sample) and a Temporal Schedule of the same id, whose runs (the monitorRun workflow) each
// profile the period before their scheduled time.
import { ScheduleNotFoundError, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Pool } from '../db/pool.ts';
import type { ModelStore } from '../registry/store.ts';
import { JOB } from '../../workflows/search-attributes.ts';
import type { MonitorRunArgs } from '../../workflows/monitor.ts';
import { webhookRefusal } from './alerts.ts';
import { loadMonitor, MonitorError, toMonitor, type Monitor } from './monitor-run.ts';
import { MONITOR_SOURCES, type MonitorSource } from './sampling.ts';
import { loadProfile } from './store.ts';
import type { DriftThresholds } from './drift.ts';

export const MONITOR_WORKFLOW = 'monitorRun';

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const MIN_EVERY_MS = 60_000;
const MAX_EVERY_MS = 31 * 86_400_000;

/** `--every`: a whole number of minutes, hours or days (`15m`, `1h`, `1d`), from one minute to 31 days. */
export function parseEvery(text: string): number {
  const match = /^\s*(\d{1,6})\s*([smhd])\s*$/.exec(text);
  const ms = match ? Number(match[1]) * UNIT_MS[match[2]] : NaN;
  if (!(ms >= MIN_EVERY_MS && ms <= MAX_EVERY_MS)) {
    throw new MonitorError(`--every must be a period such as 15m, 1h or 1d, from 1m to 31d; got ${JSON.stringify(text)}`);
  }
  return ms;
}

export function formatEvery(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's']) if (ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  return `${ms}ms`;
}

export function parseSource(text: string): MonitorSource {
  if (!(MONITOR_SOURCES as readonly string[]).includes(text)) throw new MonitorError(`--source must be one of ${MONITOR_SOURCES.join(', ')}; got ${JSON.stringify(text)}`);
  return text as MonitorSource;
}

/** `--psi-threshold`: a feature drifted at or above this PSI, as a batch job's drift.psi (0 < psi ≤ 10). */
export function parsePsiThreshold(text: string): number {
  const psi = /^\s*\d*\.?\d+(e[-+]?\d+)?\s*$/i.test(text) ? Number(text) : NaN;
  if (!(psi > 0 && psi <= 10)) throw new MonitorError(`--psi-threshold must be a number above 0 and at most 10 (0.2 is a significant shift); got ${JSON.stringify(text)}`);
  return psi;
}

/** `--drift-share`: the run drifted when at least this share of its features did, as a batch job's drift.share (0 < share ≤ 1). */
export function parseDriftShare(text: string): number {
  const share = /^\s*\d*\.?\d+(e[-+]?\d+)?\s*$/i.test(text) ? Number(text) : NaN;
  if (!(share > 0 && share <= 1)) throw new MonitorError(`--drift-share must be a share above 0 and at most 1 (0.5: half the features); got ${JSON.stringify(text)}`);
  return share;
}

export const monitorId = (modelName: string, source: MonitorSource) => `monitor-${modelName}-${source}`;

export interface CreateMonitorRequest {
  ref: string;
  everyMs: number;
  source: MonitorSource;
  webhookUrl?: string;
  /** The verdicts' thresholds; each one not given is the default (PSI 0.2, share 0.5). */
  thresholds?: Partial<DriftThresholds>;
  taskQueue: string;
  /** MLDEPLOY_CALLBACK_HOSTS. */
  alertHosts?: readonly string[];
}

/** Checks the model, its profile and the webhook, records the monitor and creates its schedule. */
export async function createMonitor(pool: Pool, store: ModelStore, client: Client, req: CreateMonitorRequest): Promise<Monitor> {
  const version = await store.resolve(req.ref);
  const ref = `${version.name}@${version.version}`;
  if (!(await loadProfile(pool, version))) {
    throw new MonitorError(
      `model ${ref} (${req.ref}) has no reference profile to monitor against: build one first with mldeploy models profile ${req.ref} --source <table> --from … --to … (or --csv <file>, --run <runId>)`,
    );
  }
  const refusal = req.webhookUrl ? webhookRefusal(req.webhookUrl, req.alertHosts) : undefined;
  if (refusal) throw new MonitorError(`--webhook: ${refusal}`);
  const { psi, share } = req.thresholds ?? {};
  if (psi !== undefined) parsePsiThreshold(String(psi));
  if (share !== undefined) parseDriftShare(String(share));
  const id = monitorId(version.name, req.source);
  const inserted = await pool.query(
    `INSERT INTO monitors (monitor_id, model_name, model_ref, source, every_ms, webhook_url, psi_threshold, drift_share) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT DO NOTHING RETURNING *`,
    [id, version.name, req.ref, req.source, req.everyMs, req.webhookUrl ?? null, psi ?? null, share ?? null],
  );
  if (!inserted.rows[0]) throw new MonitorError(`model ${version.name} already has a ${req.source} monitor, ${id}: delete it first with mldeploy monitor delete ${id}`);
  const args: MonitorRunArgs = { monitorId: id, everyMs: req.everyMs };
  try {
    await client.schedule.create({
      scheduleId: id,
      spec: { intervals: [{ every: req.everyMs }] },
      action: {
        type: 'startWorkflow',
        workflowType: MONITOR_WORKFLOW,
        workflowId: id,
        taskQueue: req.taskQueue,
        args: [args],
        typedSearchAttributes: [{ key: JOB, value: id }],
      },
      // A run still going at the next time: skip that time. A missed time (server down) runs up to one period late.
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: req.everyMs },
    });
  } catch (err) {
    await pool.query('DELETE FROM monitors WHERE monitor_id = $1', [id]);
    throw err;
  }
  return toMonitor(inserted.rows[0]);
}

export interface MonitorListing extends Monitor {
  every: string;
  paused: boolean | null;
  next: string | null;
  lastRun: { runId: string; window: { from: string; to: string }; status: string; drifted: boolean | null } | null;
}

export async function listMonitors(pool: Pool, client: Client): Promise<MonitorListing[]> {
  const { rows } = await pool.query(
    `SELECT m.*, r.run_id, r.window_start, r.window_end, r.status, r.drifted
     FROM monitors m LEFT JOIN LATERAL (SELECT * FROM monitor_runs WHERE monitor_id = m.monitor_id ORDER BY started_at DESC LIMIT 1) r ON true
     ORDER BY m.monitor_id`,
  );
  return Promise.all(
    rows.map(async (r) => {
      const schedule = await client.schedule
        .getHandle(r.monitor_id)
        .describe()
        .catch((err) => {
          if (err instanceof ScheduleNotFoundError) return null;
          throw err;
        });
      const monitor = toMonitor(r);
      return {
        ...monitor,
        every: formatEvery(monitor.everyMs),
        paused: schedule ? schedule.state.paused : null,
        next: schedule?.info.nextActionTimes[0]?.toISOString() ?? null,
        lastRun: r.run_id
          ? { runId: r.run_id, window: { from: new Date(r.window_start).toISOString(), to: new Date(r.window_end).toISOString() }, status: r.status, drifted: r.drifted }
          : null,
      };
    }),
  );
}

/** Deletes the schedule (runs already started go on) and the monitor; its runs' reports stay. */
export async function deleteMonitor(pool: Pool, client: Client, id: string): Promise<Monitor> {
  const monitor = await loadMonitor(pool, id);
  try {
    await client.schedule.getHandle(id).delete();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
  }
  await pool.query('DELETE FROM monitors WHERE monitor_id = $1', [id]);
  return monitor;
}
