// The web service's Prometheus metrics, on the process-wide registry.
import { Counter, Histogram } from 'prom-client';
import { metricsRegistry } from '../metrics.ts';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export const httpRequests = new Counter({
  name: 'mldeploy_http_requests_total',
  help: 'HTTP requests answered, by route, model, model version and status code',
  labelNames: ['route', 'model', 'version', 'status'] as const,
  registers: [metricsRegistry],
});

export const httpLatency = new Histogram({
  name: 'mldeploy_http_request_duration_seconds',
  help: 'Time from receiving a request to sending its response',
  labelNames: ['route', 'model'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const inferenceTime = new Histogram({
  name: 'mldeploy_inference_duration_seconds',
  help: 'Time spent in one onnxruntime call (feature mapping included)',
  labelNames: ['model', 'version'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const inferenceBatchSize = new Histogram({
  name: 'mldeploy_inference_batch_records',
  help: 'Records scored per onnxruntime call',
  labelNames: ['model'] as const,
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024],
  registers: [metricsRegistry],
});

export const predictionLogDropped = new Counter({
  name: 'mldeploy_prediction_log_dropped_total',
  help: 'Prediction log entries dropped because the queue was full or a write failed',
  registers: [metricsRegistry],
});

export const predictionLogWritten = new Counter({
  name: 'mldeploy_prediction_log_written_total',
  help: 'Prediction log entries written to PostgreSQL',
  registers: [metricsRegistry],
});
