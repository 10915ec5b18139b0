// Metrics of monitor runs (online and stream traffic), on the process-wide registry the
// worker's /metrics serves: each run this process finished, by monitor, model, status and
// verdict, and the latest run's rows and window end per monitor (to see a monitor that has
// stopped running or has no traffic). A run's drift gauges are the batch runs' ones
// (mldeploy_drift_*, with job = the monitor id: src/observability/batch-metrics.ts).
import { Counter, Gauge } from 'prom-client';
import { metricsRegistry } from '../metrics.ts';

const runs = new Counter({
  name: 'mldeploy_monitor_runs_total',
  help: 'Monitor runs this process finished, by monitor, model, status (finished, no-data) and verdict (drifted, stable, none)',
  labelNames: ['monitor', 'model', 'status', 'verdict'] as const,
  registers: [metricsRegistry],
});

const rows = new Gauge({
  name: 'mldeploy_monitor_run_rows',
  help: "Predictions the latest monitor run of a monitor and model profiled (its window's logged or sampled records)",
  labelNames: ['monitor', 'model'] as const,
  registers: [metricsRegistry],
});

const windowEnd = new Gauge({
  name: 'mldeploy_monitor_run_window_end_seconds',
  help: 'End of the window of the latest monitor run of a monitor and model, in Unix seconds',
  labelNames: ['monitor', 'model'] as const,
  registers: [metricsRegistry],
});

export function recordMonitorRun(monitor: string, model: string, run: { status: 'finished' | 'no-data'; drifted: boolean | null; rows: number; windowEnd: string }): void {
  runs.inc({ monitor, model, status: run.status, verdict: run.drifted === null ? 'none' : run.drifted ? 'drifted' : 'stable' });
  rows.set({ monitor, model }, run.rows);
  windowEnd.set({ monitor, model }, Date.parse(run.windowEnd) / 1000);
}
