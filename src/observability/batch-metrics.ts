// Batch scoring metrics, on the process-wide registry the worker's /metrics serves. They
// count work this process did (a retried chunk counts again); the run's exact totals are
// in batch_runs.
import { Counter, Histogram } from 'prom-client';
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

const inferenceSeconds = new Histogram({
  name: 'mldeploy_batch_inference_duration_seconds',
  help: 'Time of one batch inference call (one sub-batch of a chunk, feature mapping included)',
  labelNames: ['model', 'version'] as const,
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
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

/** Starts timing one inference call; call the returned function when it returns. */
export function startInferenceTimer(model: { name: string; version: number }): () => void {
  const end = inferenceSeconds.startTimer({ model: model.name, version: String(model.version) });
  return () => {
    end();
  };
}
