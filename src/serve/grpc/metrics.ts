// The gRPC service's Prometheus metrics, beside the HTTP ones (src/serve/metrics.ts).
import { Counter, Histogram } from 'prom-client';
import { metricsRegistry } from '../../metrics.ts';

export const grpcRequests = new Counter({
  name: 'mldeploy_grpc_requests_total',
  help: 'gRPC calls answered, by method, model and status code',
  labelNames: ['method', 'model', 'code'] as const,
  registers: [metricsRegistry],
});

export const grpcLatency = new Histogram({
  name: 'mldeploy_grpc_request_duration_seconds',
  help: 'Time from receiving a gRPC call to answering it',
  labelNames: ['method', 'model'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [metricsRegistry],
});
