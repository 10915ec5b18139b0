// A closed-loop gRPC load generator for bench:serve: `connections` calls kept in flight for
// `duration` seconds, with the same figures autocannon gives. h2load (Debian's nghttp2-client,
// written in C) drives it when installed, sending the framed ModelInfer request as HTTP/2
// POSTs, as autocannon drives HTTP. Without it, grpc-js clients do: they encode and decode in
// JavaScript, so one process's event loop caps the rate it can drive (session 4 measured 0.15×
// /predict with one in the bench's own process); the calls are spread over `processes` child
// processes, each with its own channel, and their latencies merged. On 2 cores those clients
// still take CPU the server needs, so their figure is a floor.
//
//   node --import tsx bench/grpc-load.ts   (a child: reads its job as JSON on stdin, prints latencies)
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { InferenceService } from '../src/serve/grpc/inference-service.ts';

export interface GrpcFigure {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

/** ModelInfer's path; NOOP_METHOD (the server's gRPC floor) takes the same request. */
const MODEL_INFER = '/inference.GRPCInferenceService/ModelInfer';

const modelInfer = (InferenceService.service as unknown as Record<string, { requestSerialize(r: unknown): Buffer }>).ModelInfer;

interface Job {
  address: string;
  method: string;
  /** The ModelInfer request, with raw_input_contents as base64. */
  request: Record<string, unknown> & { raw_input_contents?: string[] };
  connections: number;
  /** Wall-clock start and end of the run (ms since the epoch), the same for every child. */
  start: number;
  until: number;
}

interface ChildResult {
  latencies: number[];
  errors: number;
  seconds: number;
}

async function runChild(job: Job): Promise<ChildResult> {
  const client = new grpc.Client(job.address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20 });
  // Responses stay undecoded: the load generator spends its CPU on sending.
  const undecoded = (bytes: Buffer) => bytes;
  const request = { ...job.request, raw_input_contents: (job.request.raw_input_contents ?? []).map((b) => Buffer.from(b, 'base64')) };
  const latencies: number[] = [];
  let errors = 0;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, job.start - Date.now())));
  const loop = async () => {
    while (Date.now() < job.until) {
      const started = performance.now();
      await new Promise<void>((resolve) =>
        client.makeUnaryRequest(job.method, modelInfer.requestSerialize, undecoded, request, (err) => {
          if (err) errors++;
          else latencies.push(performance.now() - started);
          resolve();
        }),
      );
    }
  };
  const began = performance.now();
  await Promise.all(Array.from({ length: job.connections }, loop));
  const seconds = (performance.now() - began) / 1000;
  client.close();
  return { latencies, errors, seconds };
}

function spawnChild(job: Job): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as ChildResult) : reject(new Error(`gRPC load process exited ${code}`))));
    child.stdin.end(JSON.stringify(job));
  });
}

/** The ModelInfer request as it goes on the wire: gRPC's 5-byte frame (uncompressed, length) and the protobuf message. */
function grpcFrame(request: unknown): Buffer {
  const message = modelInfer.requestSerialize(request);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

/** Whether h2load (Debian's nghttp2-client) is on the PATH. */
export function hasH2load(): boolean {
  return spawnSync('h2load', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Calls the server answered with a gRPC status other than OK, from its /metrics (h2load sees HTTP 200 either way). */
async function grpcFailures(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let failed = 0;
  for (const line of text.split('\n')) {
    const match = /^mldeploy_grpc_requests_total\{[^}]*method="ModelInfer"[^}]*code="([A-Z_]+)"[^}]*\} (\d+)/.exec(line);
    if (match && match[1] !== 'OK') failed += Number(match[2]);
  }
  return failed;
}

/**
 * The same closed loop driven by h2load, a load generator written in C: `connections` HTTP/2
 * streams in flight on 4 connections, each sending the framed ModelInfer request. Latencies come
 * from its per-request log; failures from the server's gRPC status counts.
 */
async function h2Load(address: string, request: unknown, opts: { method: string; connections: number; duration: number; metricsUrl: string }): Promise<GrpcFigure> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-h2load-'));
  try {
    const body = path.join(dir, 'request.bin');
    const logFile = path.join(dir, 'requests.log');
    fs.writeFileSync(body, grpcFrame(request));
    const clients = Math.min(4, opts.connections);
    const before = await grpcFailures(opts.metricsUrl);
    const args = ['-D', String(opts.duration), '-c', String(clients), '-m', String(Math.ceil(opts.connections / clients)), '-t', '1', '-d', body];
    args.push('-H', 'content-type: application/grpc', '-H', 'te: trailers', '--log-file', logFile, `http://${address}${opts.method}`);
    const run = spawnSync('h2load', args, { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`h2load failed: ${run.stderr || run.stdout}`);
    const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n').filter(Boolean);
    const rows = lines.map((l) => l.split('\t').map(Number));
    const latencies = rows.filter((r) => r[1] === 200).map((r) => r[2] / 1000);
    const httpErrors = rows.length - latencies.length;
    latencies.sort((a, b) => a - b);
    const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
    const errors = httpErrors + (await grpcFailures(opts.metricsUrl)) - before;
    return { rps: latencies.length / opts.duration, p50: at(0.5), p99: at(0.99), errors };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `connections` calls in flight for `duration` seconds: through h2load when it is installed
 * (metricsUrl: the server's /metrics, for the gRPC status counts), else over `processes`
 * grpc-js load processes (2 by default), from when they are all up. `method` is ModelInfer's
 * path unless given (the server's gRPC floor, NOOP_METHOD).
 */
export async function grpcLoad(
  address: string,
  request: Record<string, unknown> & { raw_input_contents?: Buffer[] },
  opts: { method?: string; connections: number; duration: number; processes?: number; metricsUrl?: string },
): Promise<GrpcFigure> {
  const method = opts.method ?? MODEL_INFER;
  if (opts.metricsUrl && hasH2load()) return h2Load(address, request, { ...opts, method, metricsUrl: opts.metricsUrl });
  const processes = Math.max(1, Math.min(opts.processes ?? 2, opts.connections));
  const wire = { ...request, raw_input_contents: (request.raw_input_contents ?? []).map((b) => b.toString('base64')) };
  // Children start in about a second (tsx); the run starts for all of them at once, after that.
  const start = Date.now() + 2500;
  const until = start + opts.duration * 1000;
  const shares = Array.from({ length: processes }, (_, i) => Math.floor(opts.connections / processes) + (i < opts.connections % processes ? 1 : 0));
  const results = await Promise.all(shares.map((connections) => spawnChild({ address, method, request: wire, connections, start, until })));
  const latencies = results.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const seconds = Math.max(...results.map((r) => r.seconds));
  const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  return { rps: latencies.length / seconds, p50: at(0.5), p99: at(0.99), errors: results.reduce((n, r) => n + r.errors, 0) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let input = '';
  process.stdin.on('data', (d: Buffer) => (input += d.toString()));
  process.stdin.on('end', async () => {
    process.stdout.write(JSON.stringify(await runChild(JSON.parse(input) as Job)));
  });
}
