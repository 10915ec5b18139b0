// A closed-loop gRPC load generator for bench:serve: `connections` calls kept in flight on
// one channel (gRPC multiplexes) for `duration` seconds, with the same figures autocannon gives.
import * as grpc from '@grpc/grpc-js';
import { InferenceService } from '../src/serve/grpc/inference-service.ts';

export interface GrpcFigure {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

export async function grpcLoad(address: string, request: unknown, opts: { connections: number; duration: number }): Promise<GrpcFigure> {
  const client = new InferenceService(address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20 }) as unknown as {
    ModelInfer(r: unknown, cb: (e: Error | null) => void): void;
    close(): void;
  };
  const latencies: number[] = [];
  let errors = 0;
  const until = Date.now() + opts.duration * 1000;
  const loop = async () => {
    while (Date.now() < until) {
      const started = performance.now();
      await new Promise<void>((resolve) =>
        client.ModelInfer(request, (err) => {
          if (err) errors++;
          else latencies.push(performance.now() - started);
          resolve();
        }),
      );
    }
  };
  const began = performance.now();
  await Promise.all(Array.from({ length: opts.connections }, loop));
  const seconds = (performance.now() - began) / 1000;
  client.close();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  return { rps: latencies.length / seconds, p50: at(0.5), p99: at(0.99), errors };
}
