// Batch scoring metrics, on the process-wide registry the worker's /metrics serves. They
// count work this process did (a retried chunk counts again); the run's exact totals are
// in batch_runs. Inference time is the data plane's mldeploy_inference_duration_seconds
// (src/inference/metrics.ts) with lane="batch".
import { Counter, Gauge } from 'prom-client';
import type { DriftReport } from '../monitoring/drift.ts';
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

const featurePsi = new Gauge({
  name: 'mldeploy_drift_feature_psi',
  help: "PSI of each model input feature in the latest finalized batch run of a job and model, against the version's reference profile",
  labelNames: ['job', 'model', 'feature'] as const,
  registers: [metricsRegistry],
});

const predictionPsi = new Gauge({
  name: 'mldeploy_drift_prediction_psi',
  help: 'PSI of the predictions in the latest finalized batch run of a job and model, against the reference profile',
  labelNames: ['job', 'model'] as const,
  registers: [metricsRegistry],
});

const runDrifted = new Gauge({
  name: 'mldeploy_drift_run_drifted',
  help: 'Drift verdict of the latest finalized batch run of a job and model: 1 drifted, 0 not',
  labelNames: ['job', 'model'] as const,
  registers: [metricsRegistry],
});

const predictionMean = new Gauge({
  name: 'mldeploy_drift_prediction_mean',
  help: 'Mean prediction of the latest finalized batch run of a job and model (the reference mean is the series with run="reference")',
  labelNames: ['job', 'model', 'run'] as const,
  registers: [metricsRegistry],
});

/** The drift of a run this process finalized: the latest run of its job and model. */
export function recordRunDrift({ job, model }: BatchMetricLabels, report: DriftReport): void {
  for (const f of report.features) featurePsi.set({ job, model: model.name, feature: f.name }, f.psi);
  predictionPsi.set({ job, model: model.name }, report.prediction.psi);
  runDrifted.set({ job, model: model.name }, report.drifted ? 1 : 0);
  if (report.prediction.mean) {
    predictionMean.set({ job, model: model.name, run: 'latest' }, report.prediction.mean.current);
    predictionMean.set({ job, model: model.name, run: 'reference' }, report.prediction.mean.reference);
  }
}
