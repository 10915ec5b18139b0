// The web service's Prometheus metrics, on the process-wide registry. Inference metrics are
// the data plane's (src/inference/metrics.ts), with lane="web".
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
