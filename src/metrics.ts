// One Prometheus registry per process, shared by the web service, the worker and the
// streaming code. Each area defines its own metrics on it.
import { collectDefaultMetrics, Registry } from 'prom-client';

export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry, prefix: 'mldeploy_process_' });
