// Prometheus metrics of the streaming fan-out, on the process's shared registry (served by
// the worker's /metrics). Names and labels are the ones docs/grafana-dashboard.json queries.
import { Counter, Gauge, Histogram } from 'prom-client';
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

/** Batched mode: events per claimed batch. */
export const batchSize = new Histogram({
  name: 'mldeploy_stream_batch_size',
  help: 'Events per batch claimed by a partition workflow, by event type',
  labelNames: ['event_type'] as const,
  buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000],
  registers: [metricsRegistry],
});

/** Batched mode: events appended to a partition and not yet claimed, at its last claim. */
export const partitionLag = new Gauge({
  name: 'mldeploy_stream_partition_lag',
  help: 'Events in a partition of the inbound log beyond the last claimed offset, by event type and partition',
  labelNames: ['event_type', 'partition'] as const,
  registers: [metricsRegistry],
});
