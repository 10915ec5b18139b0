// The worker's HTTP endpoint for operations: GET /metrics (the process-wide Prometheus
// registry: batch, streaming and process metrics) and GET /healthz (the container
// healthcheck). The Temporal SDK's own metrics are on a port of their own (see
// installTemporalRuntimeWithMetrics), because the SDK's exporter runs in native code.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { metricsRegistry } from '../metrics.ts';

export interface MetricsServer {
  /** The port actually bound (useful when 0 was asked for in tests). */
  port: number;
  close(): Promise<void>;
}

export interface WorkerHealth {
  /** The worker's state as Temporal reports it (Worker.getState): RUNNING is healthy. */
  getState(): string;
}

async function answer(req: http.IncomingMessage, res: http.ServerResponse, health: WorkerHealth): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
  } else if (path === '/metrics') {
    const body = await metricsRegistry.metrics();
    res.writeHead(200, { 'content-type': metricsRegistry.contentType }).end(body);
  } else if (path === '/healthz') {
    const state = health.getState();
    res.writeHead(state === 'RUNNING' ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: state }));
  } else {
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found; try /metrics or /healthz' }));
  }
}

/**
 * Listens on host:port. Resolves to null when the port is taken (another worker on this
 * host), so the worker itself keeps running; the caller says so in the log.
 */
export async function startWorkerMetricsServer(host: string, port: number, health: WorkerHealth): Promise<MetricsServer | null> {
  const server = http.createServer((req, res) => {
    answer(req, res, health).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  const bound = await new Promise<boolean>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(false) : reject(err)));
    server.listen(port, host, () => resolve(true));
  });
  if (!bound) return null;
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
