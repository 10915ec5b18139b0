// What `mldeploy worker` exposes for operations: the Temporal SDK's metrics (installed with
// the runtime, so before the first worker connection) and mldeploy's /metrics + /healthz.
import type { Config } from '../config.ts';
import { log } from '../log.ts';
import { installTemporalRuntimeWithMetrics } from '../temporal-logging.ts';
import { startWorkerMetricsServer, type MetricsServer, type WorkerHealth } from './worker-metrics.ts';

const hostPort = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** Call before the worker's first Temporal connection. */
export function exportSdkMetrics(config: Config): void {
  const { host, sdkPort } = config.metrics;
  if (sdkPort === 0) return;
  const address = hostPort(host, sdkPort);
  const problem = installTemporalRuntimeWithMetrics(address);
  if (problem) log.warn({ address }, `Temporal SDK metrics are off: ${problem}; set MLDEPLOY_SDK_METRICS_PORT per worker, or 0`);
  else log.info({ address }, 'Temporal SDK metrics on /metrics');
}

/** Healthy while every worker of the process runs; otherwise the first other state. */
export function combinedHealth(workers: WorkerHealth[]): WorkerHealth {
  return { getState: () => workers.map((w) => w.getState()).find((state) => state !== 'RUNNING') ?? 'RUNNING' };
}

/** Serves /metrics and /healthz for the process's workers; null when turned off or the port is taken. */
export async function serveWorkerMetrics(config: Config, workers: WorkerHealth[]): Promise<MetricsServer | null> {
  const { host, workerPort } = config.metrics;
  if (workerPort === 0) return null;
  const server = await startWorkerMetricsServer(host, workerPort, combinedHealth(workers));
  const address = hostPort(host, workerPort);
  if (server) log.info({ address }, 'worker metrics on /metrics, health on /healthz');
  else log.warn({ address }, 'worker metrics port is taken (another worker on this host?): set MLDEPLOY_WORKER_METRICS_PORT per worker, or 0');
  return server;
}
