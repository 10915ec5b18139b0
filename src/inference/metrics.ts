// Inference metrics, one set for every lane (label `lane`: web, batch, stream, cli), on the
// process-wide registry. The data plane records them for each onnxruntime call.
import { Histogram } from 'prom-client';
import { metricsRegistry } from '../metrics.ts';

export type Lane = 'web' | 'batch' | 'stream' | 'cli';

export const inferenceDuration = new Histogram({
  name: 'mldeploy_inference_duration_seconds',
  help: 'Time of one onnxruntime call (feature mapping and post-processing included), by lane, model and model version',
  labelNames: ['lane', 'model', 'version'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [metricsRegistry],
});

export const inferenceBatchRecords = new Histogram({
  name: 'mldeploy_inference_batch_records',
  help: 'Records (rows) scored per onnxruntime call, by lane and model',
  labelNames: ['lane', 'model'] as const,
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 8192, 65536],
  registers: [metricsRegistry],
});

/** Records one call: its duration in seconds and its row count. */
export function observeInference(lane: Lane, model: { name: string; version: number }, seconds: number, rows: number): void {
  inferenceDuration.observe({ lane, model: model.name, version: String(model.version) }, seconds);
  inferenceBatchRecords.observe({ lane, model: model.name }, rows);
}
