// Web service benchmark (`npm run bench:serve`). The server runs in a child process
// (`mldeploy serve`); autocannon drives HTTP from this process, and gRPC load comes from h2load
// (or grpc-js load processes of their own; bench/grpc-load.ts), all on the same 2-core machine.
// Figures: (a) POST /predict with one record per request, (b) the HTTP floor (a bare route on
// the same server, through the same hooks), (l) the gRPC floor (a no-op grpc-js method), (m)
// HTTP/2's floor (bare node:http2, no gRPC library), v2 infer of one row and of 10,000 rows over HTTP
// JSON, HTTP binary and gRPC (rows/s and binary/JSON for 10,000 rows), the same 10,000 rows for
// a linear model without string inputs; the figures a ratio compares run interleaved in rounds
// (--rounds); p99 of /predict at a fixed 1,000 req/s; dynamic batching on vs off; and p99 of
// small requests while 10,000-record requests run beside them.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { loadConfig } from '../src/config.ts';
import { openStack } from '../src/stack/stack.ts';
import { freePort, waitFor } from '../src/stack/ports.ts';
import { ModelStore } from '../src/registry/store.ts';
import { registerModel } from '../src/registry/register.ts';
import { NOOP_METHOD } from '../src/serve/grpc/inference-service.ts';
import { grpcLoad } from './grpc-load.ts';
import { startHttp2Floor } from './http2-floor.ts';
import { registerBenchModel } from './support.ts';

const { values: args } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '64' }, rounds: { type: 'string', default: '3' } },
});
const DURATION_S = Number(args.seconds);
/** Rounds the compared figures are measured in, interleaved (--rounds). */
const ROUNDS = Math.max(1, Number(args.rounds));
const CONNECTIONS = Number(args.connections);
const RIDE = { PULocationID: 10, DOLocationID: 50, trip_distance: 4 };
const V2_BODY = {
  inputs: [
    { name: 'PU_DO', shape: [1, 1], datatype: 'BYTES', data: ['10_50'] },
    { name: 'trip_distance', shape: [1, 1], datatype: 'FP32', data: [4] },
  ],
};
/** The linear model's v2 bodies for `rows` rows: one FP32 [rows, 3] input `x` (no strings, so scoring is cheap and the transport shows). */
function linearBodies(model: string, rows: number) {
  const features = Float32Array.from({ length: rows * 3 }, (_, k) => (k % 3 === 2 ? 0.5 + ((k / 3) % 40) : 1 + (k % 263)));
  const json = { inputs: [{ name: 'x', shape: [rows, 3], datatype: 'FP32', data: Array.from(features) }] };
  const raw = Buffer.from(features.buffer);
  const header = Buffer.from(
    JSON.stringify({ inputs: [{ name: 'x', shape: [rows, 3], datatype: 'FP32', parameters: { binary_data_size: raw.length } }], parameters: { binary_data_output: true } }),
  );
  return {
    json,
    binary: { payload: Buffer.concat([header, raw]), headers: { 'inference-header-content-length': String(header.length) } },
    grpc: { model_name: model, inputs: [{ name: 'x', shape: [rows, 3], datatype: 'FP32' }], raw_input_contents: [raw] },
  };
}

/** v2 infer bodies for `rows` rows: JSON, the binary extension (header + raw bytes) and a gRPC request with raw contents. */
function v2Bodies(model: string, rows: number) {
  const keys = Array.from({ length: rows }, (_, i) => `${1 + (i % 263)}_${1 + ((i * 7) % 263)}`);
  const distances = Float32Array.from({ length: rows }, (_, i) => 0.5 + (i % 40));
  const json = {
    inputs: [
      { name: 'PU_DO', shape: [rows, 1], datatype: 'BYTES', data: keys },
      { name: 'trip_distance', shape: [rows, 1], datatype: 'FP32', data: Array.from(distances) },
    ],
  };
  const raw = [Buffer.concat(keys.flatMap((k) => [Buffer.from(Uint32Array.of(k.length).buffer), Buffer.from(k)])), Buffer.from(distances.buffer)];
  const header = Buffer.from(
    JSON.stringify({
      inputs: json.inputs.map(({ data: _data, ...t }, i) => ({ ...t, parameters: { binary_data_size: raw[i].length } })),
      parameters: { binary_data_output: true },
    }),
  );
  return {
    json,
    binary: { payload: Buffer.concat([header, ...raw]), headers: { 'inference-header-content-length': String(header.length) } },
    grpc: { model_name: model, inputs: json.inputs.map(({ data: _data, ...t }) => t), raw_input_contents: raw },
  };
}

const BIG_BATCH = Array.from({ length: 10_000 }, (_, i) => ({ PULocationID: 1 + (i % 263), DOLocationID: 1 + ((i * 7) % 263), trip_distance: 0.5 + (i % 40) }));

interface Server {
  url: string;
  grpcAddress: string;
  stop(): Promise<void>;
}

async function startServer(databaseUrl: string, model: string, env: Record<string, string> = {}): Promise<Server> {
  const port = await freePort();
  const grpcPort = await freePort();
  const child: ChildProcess = spawn(process.execPath, ['bin/mldeploy.js', 'serve', '--port', String(port)], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      MLDEPLOY_SERVE_MODEL: model,
      MLDEPLOY_SERVE_NOOP_ROUTE: '1',
      MLDEPLOY_GRPC_PORT: String(grpcPort),
      MLDEPLOY_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('the web service', async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200, 60_000);
  return {
    url,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

interface Figure {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function load(
  url: string,
  opts: { method?: 'GET' | 'POST'; body?: unknown; raw?: { payload: Buffer; headers: Record<string, string> }; connections?: number; overallRate?: number; duration?: number } = {},
): Promise<Figure> {
  const result = await autocannon({
    url,
    method: opts.method ?? 'GET',
    body: opts.raw ? opts.raw.payload : opts.body === undefined ? undefined : JSON.stringify(opts.body),
    headers: opts.raw ? opts.raw.headers : opts.body === undefined ? {} : { 'content-type': 'application/json' },
    connections: opts.connections ?? CONNECTIONS,
    overallRate: opts.overallRate,
    duration: opts.duration ?? DURATION_S,
  });
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx + result.timeouts };
}

/**
 * Runs each measurement ROUNDS times, in turn within each round, and merges each one's rounds:
 * req/s averaged (equal spans), p50 the median of the rounds', p99 the highest, errors summed.
 */
async function interleaved(measures: Array<() => Promise<Figure>>): Promise<Figure[]> {
  const rounds: Figure[][] = measures.map(() => []);
  for (let r = 0; r < ROUNDS; r++) for (const [i, measure] of measures.entries()) rounds[i].push(await measure());
  return rounds.map((figures) => {
    const p50s = figures.map((f) => f.p50).sort((a, b) => a - b);
    return {
      rps: figures.reduce((n, f) => n + f.rps, 0) / figures.length,
      p50: p50s[Math.floor(p50s.length / 2)],
      p99: Math.max(...figures.map((f) => f.p99)),
      errors: figures.reduce((n, f) => n + f.errors, 0),
    };
  });
}

/** Lets the server finish the previous run's backlog (and collect its garbage) before a latency figure. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 2000));

const fmt = (f: Figure) =>
  `${Math.round(f.rps).toLocaleString('en-US').padStart(7)} req/s   p50 ${String(f.p50).padStart(3)} ms   p99 ${String(f.p99).padStart(3)} ms${f.errors ? `   ${f.errors} ERRORS` : ''}`;

async function main() {
  const stack = await openStack(loadConfig(), { temporal: false });
  const model = await registerBenchModel(new ModelStore(stack.pool), 'trip-duration');
  // The test fixture y = a·x + b over three FP32 features: scoring 10,000 rows costs little.
  const linear = `bench-linear-${Date.now()}`;
  const fixture = (file: string) => fs.readFileSync(path.join('test', 'fixtures', 'models', file));
  const linearSpec = JSON.parse(fixture('plain_linear.spec.json').toString());
  await registerModel(new ModelStore(stack.pool), { name: linear, bytes: fixture('plain_linear.onnx'), spec: linearSpec, alias: 'production', maxBytes: 1 << 26 });
  const ref = `${model}@production`;
  const say = (line: string) => process.stdout.write(`${line}\n`);
  say(
    `web service benchmark: ${DURATION_S} s per figure (in ${ROUNDS} interleaved rounds), ${CONNECTIONS} connections, model ${ref}, server and load generator on this ${os.cpus().length}-core machine`,
  );
  say(`load average before: ${os.loadavg()[0].toFixed(1)} (other work on the machine shows here)`);
  try {
    const server = await startServer(stack.databaseUrl, ref);
    let floor: Figure, predict: Figure, v2: Figure, fixed: Figure;
    try {
      await load(`${server.url}/predict`, { method: 'POST', body: RIDE, duration: 3 }); // warm-up
      // The figures a ratio compares run in rounds, one after the other within each round
      // (ROUNDS rounds of DURATION_S / ROUNDS seconds each), so load from other work on the
      // machine, which drifts over minutes, weighs on each about equally.
      const v2Url = `${server.url}/v2/models/${model}/infer`;
      const one = v2Bodies(model, 1);
      const span = DURATION_S / ROUNDS;
      const h2Floor = await startHttp2Floor();
      const grpcOpts = (connections: number) => ({ connections, duration: span, metricsUrl: `${server.url}/metrics` });
      const small = await interleaved([
        () => load(`${server.url}/bench/noop`, { duration: span }),
        () => load(`${server.url}/predict`, { method: 'POST', body: RIDE, duration: span }),
        () => load(v2Url, { method: 'POST', body: V2_BODY, duration: span }),
        () => load(v2Url, { method: 'POST', raw: one.binary, duration: span }),
        () => grpcLoad(server.grpcAddress, one.grpc, grpcOpts(CONNECTIONS)),
        () => grpcLoad(server.grpcAddress, one.grpc, { ...grpcOpts(CONNECTIONS), method: NOOP_METHOD }),
        () => grpcLoad(h2Floor.address, one.grpc, grpcOpts(CONNECTIONS)),
      ]);
      await h2Floor.close();
      [floor, predict, v2] = small;
      const [, , , v2Binary, v2Grpc, grpcFloor, http2Floor] = small;
      say(`(b) GET /bench/noop (HTTP floor)      ${fmt(floor)}`);
      say(`(a) POST /predict, 1 record            ${fmt(predict)}   a/b ${(predict.rps / floor.rps).toFixed(2)}`);
      say(`(c) POST /v2/models/…/infer, 1 row     ${fmt(v2)}   c/a ${(v2.rps / predict.rps).toFixed(2)}`);
      say(`(d) v2 infer, 1 row, HTTP binary       ${fmt(v2Binary)}   d/a ${(v2Binary.rps / predict.rps).toFixed(2)}`);
      say(`(e) v2 ModelInfer, 1 row, gRPC         ${fmt(v2Grpc)}   e/a ${(v2Grpc.rps / predict.rps).toFixed(2)}`);
      say(`(l) gRPC floor (no-op method, grpc-js) ${fmt(grpcFloor)}   l/a ${(grpcFloor.rps / predict.rps).toFixed(2)}   e/l ${(v2Grpc.rps / grpcFloor.rps).toFixed(2)}`);
      say(`(m) HTTP/2 floor (bare node:http2)     ${fmt(http2Floor)}   m/a ${(http2Floor.rps / predict.rps).toFixed(2)}   l/m ${(grpcFloor.rps / http2Floor.rps).toFixed(2)}`);
      const big10k = v2Bodies(model, 10_000);
      // 10,000 rows for the linear model (one FP32 [N, 3] input): scoring costs little, so the transports show.
      const linear10k = linearBodies(linear, 10_000);
      const linearUrl = `${server.url}/v2/models/${linear}/infer`;
      await settle();
      const [bigJson, bigBinary, bigGrpc, linearJson, linearBinary, linearGrpc] = await interleaved([
        () => load(v2Url, { method: 'POST', body: big10k.json, connections: 4, duration: span }),
        () => load(v2Url, { method: 'POST', raw: big10k.binary, connections: 4, duration: span }),
        () => grpcLoad(server.grpcAddress, big10k.grpc, grpcOpts(4)),
        () => load(linearUrl, { method: 'POST', body: linear10k.json, connections: 4, duration: span }),
        () => load(linearUrl, { method: 'POST', raw: linear10k.binary, connections: 4, duration: span }),
        () => grpcLoad(server.grpcAddress, linear10k.grpc, grpcOpts(4)),
      ]);
      const rows = (f: Figure) => `${Math.round(f.rps * 10_000).toLocaleString('en-US')} rows/s`;
      say(`(f) v2 infer, 10,000 rows, HTTP JSON   ${fmt(bigJson)}   ${rows(bigJson)}`);
      say(`(g) v2 infer, 10,000 rows, HTTP binary ${fmt(bigBinary)}   ${rows(bigBinary)}   binary/JSON ${(bigBinary.rps / bigJson.rps).toFixed(2)}`);
      say(`(h) v2 ModelInfer, 10,000 rows, gRPC   ${fmt(bigGrpc)}   ${rows(bigGrpc)}   gRPC/JSON ${(bigGrpc.rps / bigJson.rps).toFixed(2)}`);
      say(`(i) linear, 10,000 rows, HTTP JSON    ${fmt(linearJson)}   ${rows(linearJson)}`);
      say(`(j) linear, 10,000 rows, HTTP binary  ${fmt(linearBinary)}   ${rows(linearBinary)}   binary/JSON ${(linearBinary.rps / linearJson.rps).toFixed(2)}`);
      say(`(k) linear, 10,000 rows, gRPC         ${fmt(linearGrpc)}   ${rows(linearGrpc)}   gRPC/JSON ${(linearGrpc.rps / linearJson.rps).toFixed(2)}`);
      await settle();
      fixed = await load(`${server.url}/predict`, { method: 'POST', body: RIDE, connections: 16, overallRate: 1000 });
      say(`    POST /predict at 1,000 req/s       ${fmt(fixed)}`);

      await settle();
      // Small requests beside 10,000-record requests: slicing bounds how long they wait.
      const big = load(`${server.url}/v1/models/${model}/predict`, { method: 'POST', body: BIG_BATCH, connections: 1 });
      const beside = await load(`${server.url}/predict`, { method: 'POST', body: RIDE, connections: 16, overallRate: 1000 });
      const bigResult = await big;
      say(
        `    POST /predict at 1,000 req/s beside 10,000-record requests ${fmt(beside)}   (big: ${(bigResult.rps * BIG_BATCH.length).toFixed(0)} records/s, p99 ${bigResult.p99} ms)`,
      );
    } finally {
      await server.stop();
    }

    const unbatched = await startServer(stack.databaseUrl, ref, { MLDEPLOY_SERVE_BATCH_MAX: '1' });
    try {
      await load(`${unbatched.url}/predict`, { method: 'POST', body: RIDE, duration: 3 });
      const off = await load(`${unbatched.url}/predict`, { method: 'POST', body: RIDE });
      say(`    POST /predict, dynamic batching off ${fmt(off)}   on/off ${(predict.rps / off.rps).toFixed(2)}`);
    } finally {
      await unbatched.stop();
    }
    say(`load average after: ${os.loadavg()[0].toFixed(1)}`);
  } finally {
    await stack.pool.query('DELETE FROM model_aliases WHERE name = ANY($1)', [[model, linear]]);
    await stack.pool.query('DELETE FROM model_versions WHERE name = ANY($1)', [[model, linear]]);
    await stack.close();
  }
}

await main();
