// Batch scoring metrics, on the process-wide registry the worker's /metrics serves. They
// count work this process did (a retried chunk counts again); the run's exact totals are
// in batch_runs. Inference time is the data plane's mldeploy_inference_duration_seconds
// (src/inference/metrics.ts) with lane="batch".
import { Counter } from 'prom-client';
import { metricsRegistry } from '../metrics.ts';

const rowsScored = new Counter({
  name: 'mldeploy_batch_rows_scored_total',
  help: 'Rows scored and written by batch chunks, by job, model and model version',
  labelNames: ['job', 'model', 'version'] as const,
  registers: [metricsRegistry],
});

const rowsRejected = new Counter({
  name: 'mldeploy_batch_rows_rejected_total',
  help: 'Rows a batch chunk rejected (bad or missing features), by job, model and model version',
  labelNames: ['job', 'model', 'version'] as const,
  registers: [metricsRegistry],
});

const chunksScored = new Counter({
  name: 'mldeploy_batch_chunks_total',
  help: 'Batch chunks committed by this process, by job',
  labelNames: ['job'] as const,
  registers: [metricsRegistry],
});

export interface BatchMetricLabels {
  job: string;
  model: { name: string; version: number };
}

/** Counts a committed chunk's rows. Call it after the chunk's transaction commits. */
export function recordChunkCommitted({ job, model }: BatchMetricLabels, counts: { scored: number; rejected: number }): void {
  const labels = { job, model: model.name, version: String(model.version) };
  rowsScored.inc(labels, counts.scored);
  rowsRejected.inc(labels, counts.rejected);
  chunksScored.inc({ job });
}
