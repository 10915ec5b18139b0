// The worker's operations endpoint: /metrics serves the shared registry (batch metrics
// included), /healthz follows the worker's state, and a taken port never stops a worker.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startWorkerMetricsServer, type MetricsServer } from '../../src/observability/worker-metrics.ts';
import { recordChunkCommitted } from '../../src/observability/batch-metrics.ts';
import { observeInference } from '../../src/inference/metrics.ts';
import { combinedHealth } from '../../src/observability/worker-observability.ts';

let server: MetricsServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

describe('worker metrics endpoint', () => {
  it('serves batch metrics by job, model and version on /metrics', async () => {
    let state = 'RUNNING';
    server = await startWorkerMetricsServer('127.0.0.1', 0, { getState: () => state });
    const model = { name: 'unit-metrics-model', version: 7 };
    recordChunkCommitted({ job: 'unit-metrics-job', model }, { scored: 480, rejected: 20 });
    recordChunkCommitted({ job: 'unit-metrics-job', model }, { scored: 500, rejected: 0 });
    observeInference('batch', model, 0.01, 500);

    const res = await fetch(`http://127.0.0.1:${server!.port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('mldeploy_batch_rows_scored_total{job="unit-metrics-job",model="unit-metrics-model",version="7"} 980');
    expect(text).toContain('mldeploy_batch_rows_rejected_total{job="unit-metrics-job",model="unit-metrics-model",version="7"} 20');
    expect(text).toContain('mldeploy_batch_chunks_total{job="unit-metrics-job"} 2');
    expect(text).toContain('mldeploy_inference_duration_seconds_count{lane="batch",model="unit-metrics-model",version="7"} 1');

    expect(await (await fetch(`http://127.0.0.1:${server!.port}/healthz`)).json()).toEqual({ status: 'RUNNING' });
    state = 'DRAINING';
    const draining = await fetch(`http://127.0.0.1:${server!.port}/healthz`);
    expect([draining.status, await draining.json()]).toEqual([503, { status: 'DRAINING' }]);
  });

  it('answers 404 for other paths and 405 for other methods', async () => {
    server = await startWorkerMetricsServer('127.0.0.1', 0, { getState: () => 'RUNNING' });
    expect((await fetch(`http://127.0.0.1:${server!.port}/nope`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server!.port}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('resolves to null when the port is taken (another worker on the host), instead of failing', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as net.AddressInfo).port;
      expect(await startWorkerMetricsServer('127.0.0.1', port, { getState: () => 'RUNNING' })).toBeNull();
    } finally {
      taken.close();
    }
  });

  it('a process with several workers (main queue and consumers) is healthy only while all of them run', () => {
    const states = ['RUNNING', 'RUNNING'];
    const health = combinedHealth(states.map((_, i) => ({ getState: () => states[i] })));
    expect(health.getState()).toBe('RUNNING');
    states[1] = 'FAILED';
    expect(health.getState()).toBe('FAILED');
  });
});
