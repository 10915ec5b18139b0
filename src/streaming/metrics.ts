// Prometheus metrics of the streaming fan-out, on the process's shared registry (served by
// the worker's /metrics). Names and labels are the ones docs/grafana-dashboard.json queries.
import { Counter } from 'prom-client';
import { metricsRegistry } from '../metrics.ts';

/** status: ok (appended), duplicate (a retry found its record already there), error. */
export const predictionsTotal = new Counter({
  name: 'mldeploy_stream_predictions_total',
  help: 'Consumer predictions, by consumer, model, version and status',
  labelNames: ['consumer', 'model', 'version', 'status'] as const,
  registers: [metricsRegistry],
});

/** Counted once per event: repeats of an idempotent append are not counted. */
export const decisionsTotal = new Counter({
  name: 'mldeploy_stream_decisions_total',
  help: 'Decisions appended to the decision stream, by event type, status and action',
  labelNames: ['event_type', 'status', 'action'] as const,
  registers: [metricsRegistry],
});
