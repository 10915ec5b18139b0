// The Open Inference Protocol over gRPC (inference.GRPCInferenceService on MLDEPLOY_GRPC_PORT)
// with off-the-shelf clients: the pinned tritonclient.grpc (raw contents) and a grpc-js client
// on the pinned proto (`contents`) get the same outputs as HTTP JSON; health and metadata;
// the status codes; the bearer token as `authorization` metadata; the prediction log; a
// promote under gRPC load.
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelCache } from '../../src/registry/runtime.ts';
import { registerModel } from '../../src/registry/register.ts';
import { InferenceService } from '../../src/serve/grpc/inference-service.ts';
import { startWebService, type WebService } from '../../src/serve/service.ts';
import { freePort } from '../../src/stack/ports.ts';
import { FIXTURES, openTestEnv, registerExample, uniqueName, type TestEnv } from '../helpers.ts';
import { ensureTritonClient, tritonCall, type TritonTensor } from '../setup/triton-client.ts';
import { registerAs, RIDES, serveConfig, waitFor } from './serve-support.ts';
import { dtypeInputs, rideInputs, viaJson } from './v2-support.ts';

const TOKEN = 'v2-grpc-token-0123456789';
let env: TestEnv;
let models: ModelCache;
let service: WebService;
let grpcUrl: string;
let client: grpc.Client & Record<string, (req: unknown, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void>;
const names = { duration: '', dtypes: '' };

beforeAll(async () => {
  await ensureTritonClient();
  env = await openTestEnv();
  names.duration = (await registerExample(env, 'trip-duration')).name;
  names.dtypes = (await registerModel(env.store, { name: uniqueName('dtypes'), bytes: fs.readFileSync(path.join(FIXTURES, 'dtypes.onnx')), maxBytes: 1 << 26 })).name;
  models = new ModelCache(env.store, 1);
  const config = serveConfig({ defaultModel: `${names.duration}@production`, apiToken: TOKEN, port: 0, grpcPort: await freePort(), predictionLog: true });
  service = await startWebService({ pool: env.pool, store: env.store, models, config });
  grpcUrl = service.grpcAddress!;
  client = new InferenceService(grpcUrl, grpc.credentials.createInsecure()) as unknown as typeof client;
}, 600_000);

afterAll(async () => {
  client?.close();
  await service?.close();
  await models?.release();
  await env?.close();
});

function rpc(method: string, request: unknown, token = TOKEN): Promise<Record<string, unknown>> {
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  return new Promise((resolve, reject) => client[method](request, md, (err, res) => (err ? reject(err) : resolve(res as Record<string, unknown>))));
}

describe('tritonclient.grpc (raw contents)', () => {
  it('live, ready, server and model metadata', async () => {
    const meta = await tritonCall({ protocol: 'grpc', url: grpcUrl, model: names.duration, token: TOKEN });
    expect(meta).toMatchObject({
      live: true,
      ready: true,
      model_ready: true,
      server: { name: 'mldeploy', extensions: ['binary_tensor_data'] },
      model: {
        name: names.duration,
        versions: ['1'],
        platform: 'onnxruntime_onnx',
        inputs: [
          { name: 'PU_DO', datatype: 'BYTES', shape: ['-1', '1'] },
          { name: 'trip_distance', datatype: 'FP32', shape: ['-1', '1'] },
        ],
        outputs: [{ name: 'variable', datatype: 'FP32', shape: ['-1', '1'] }],
      },
    });
  });

  it('infer with FP32 and BYTES, and with INT64, FP64, BOOL and BYTES: the same outputs as HTTP JSON', async () => {
    for (const [model, inputs] of [
      [names.duration, rideInputs()],
      [names.dtypes, dtypeInputs()],
    ] as const) {
      const answer = await tritonCall({ protocol: 'grpc', url: grpcUrl, model, token: TOKEN, inputs });
      expect('outputs' in answer && answer.outputs).toEqual(await viaJson(service.url, TOKEN, model, inputs));
    }
  });

  it('a wrong token: UNAUTHENTICATED on gRPC, 401 on HTTP', async () => {
    expect(await tritonCall({ protocol: 'grpc', url: grpcUrl, model: names.duration, token: 'wrong', inputs: rideInputs() })).toMatchObject({
      error: 'invalid API token',
      status: 'StatusCode.UNAUTHENTICATED',
    });
    expect(await tritonCall({ protocol: 'http', url: service.url.replace('http://', ''), model: names.duration, token: 'wrong', inputs: rideInputs() })).toMatchObject({
      status: '401',
    });
  });
});

describe('prediction log', () => {
  it('v2 infer over gRPC and HTTP binary: one entry per row, with the inputs by name and the output', async () => {
    const ids = { grpc: uniqueName('log-grpc'), http: uniqueName('log-http') };
    const viaGrpc = await tritonCall({ protocol: 'grpc', url: grpcUrl, model: names.duration, token: TOKEN, id: ids.grpc, inputs: rideInputs() });
    const viaHttp = await tritonCall({ protocol: 'http', url: service.url.replace('http://', ''), model: names.duration, token: TOKEN, id: ids.http, inputs: rideInputs() });
    for (const [id, answer] of [
      [ids.grpc, viaGrpc],
      [ids.http, viaHttp],
    ] as const) {
      const entries = async () =>
        (await env.pool.query('SELECT record_index, model_name, model_version, features, prediction FROM prediction_log WHERE request_id = $1 ORDER BY record_index', [id])).rows;
      await waitFor(async () => (await entries()).length === RIDES.length, `the prediction log entries of ${id}`);
      const predictions = (answer as { outputs: Record<string, TritonTensor> }).outputs.variable.data as number[];
      expect(await entries()).toEqual(
        RIDES.map((r, i) => ({
          record_index: i,
          model_name: names.duration,
          model_version: 1,
          features: { PU_DO: `${r.PULocationID}_${r.DOLocationID}`, trip_distance: expect.closeTo(r.trip_distance, 5) },
          prediction: expect.closeTo(predictions[i], 4),
        })),
      );
    }
  });
});

describe('grpc-js client on the pinned proto', () => {
  it('`contents` in, `contents` out: the same outputs as HTTP JSON', async () => {
    const res = await rpc('ModelInfer', {
      model_name: names.dtypes,
      id: 'c-1',
      inputs: [
        { name: 'i', datatype: 'INT64', shape: [2, 1], contents: { int64_contents: [1, -3] } },
        { name: 'd', datatype: 'FP64', shape: [2, 1], contents: { fp64_contents: [0.5, 1.25] } },
        { name: 'b', datatype: 'BOOL', shape: [2, 1], contents: { bool_contents: [true, false] } },
        { name: 's', datatype: 'BYTES', shape: [2, 1], contents: { bytes_contents: [Buffer.from('green'), Buffer.from('blue')] } },
      ],
    });
    const json = await viaJson(service.url, TOKEN, names.dtypes, [
      { name: 'i', datatype: 'INT64', shape: [2, 1], data: [1, -3] },
      { name: 'd', datatype: 'FP64', shape: [2, 1], data: [0.5, 1.25] },
      { name: 'b', datatype: 'BOOL', shape: [2, 1], data: [true, false] },
      { name: 's', datatype: 'BYTES', shape: [2, 1], data: ['green', 'blue'] },
    ]);
    expect(res).toMatchObject({ model_name: names.dtypes, model_version: '1', id: 'c-1', raw_output_contents: [] });
    const [output] = res.outputs as Array<{ name: string; datatype: string; shape: string[]; contents: { fp32_contents: number[] } }>;
    expect({ name: output.name, datatype: output.datatype, shape: output.shape.map(Number), data: output.contents.fp32_contents }).toEqual(json.y);
  });

  it('status codes: NOT_FOUND, INVALID_ARGUMENT (each with what is wrong), UNAUTHENTICATED, RESOURCE_EXHAUSTED; health needs no token', async () => {
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'OK',
        (err: grpc.ServiceError) => `${grpc.status[err.code]}: ${err.details}`,
      );
    const one = rideInputs(RIDES.slice(0, 1));
    const contents = [{ bytes_contents: [Buffer.from('10_50')] }, { fp32_contents: [4] }];
    const inputs = one.map((t, i) => ({ name: t.name, datatype: t.datatype, shape: t.shape, contents: contents[i] }));
    expect(await code(rpc('ModelInfer', { model_name: uniqueName('missing'), inputs }))).toMatch(/^NOT_FOUND: model .* does not exist/);
    expect(await code(rpc('ModelInfer', { model_name: names.duration, inputs: [inputs[0], { ...inputs[1], shape: [1, 2] }] }))).toBe(
      "INVALID_ARGUMENT: input 'trip_distance' has shape [-1, 1]; dimension 1 must be 1, not 2",
    );
    expect(await code(rpc('ModelInfer', { model_name: names.duration, inputs, raw_input_contents: [Buffer.alloc(4)] }))).toBe(
      'INVALID_ARGUMENT: raw_input_contents has 1 entries for 2 inputs; give one per input, in order',
    );
    expect(await code(rpc('ModelInfer', { model_name: names.duration, inputs: [inputs[0], { ...inputs[1], contents: { fp32_contents: [NaN] } }] }))).toBe(
      "INVALID_ARGUMENT: input 'trip_distance': element 0 must be a finite number, got NaN",
    );
    expect(await code(rpc('ModelMetadata', { name: names.duration }, 'wrong'))).toBe('UNAUTHENTICATED: invalid API token');
    expect(await code(rpc('ModelMetadata', { name: names.duration }, ''))).toBe('UNAUTHENTICATED: this route needs an Authorization: Bearer <token> header');
    expect(await rpc('ServerLive', {}, '')).toEqual({ live: true });
    expect(await rpc('ServerReady', {}, '')).toEqual({ ready: true });
    // A call larger than MLDEPLOY_SERVE_BODY_LIMIT_MB, as HTTP's 413.
    const huge = { model_name: names.duration, inputs: inputs.map(({ contents: _c, ...t }) => t), raw_input_contents: [Buffer.alloc(5 << 20), Buffer.alloc(4)] };
    expect(await code(rpc('ModelInfer', huge))).toMatch(/^RESOURCE_EXHAUSTED: /);
  });

  it('model readiness (gRPC and HTTP) reports whether the version is loaded, and never loads it', async () => {
    const fresh = (await registerExample(env, 'trip-duration')).name;
    const httpReady = async () => (await fetch(`${service.url}/v2/models/${fresh}/ready`, { headers: { authorization: `Bearer ${TOKEN}` } })).status;
    expect(await rpc('ModelReady', { name: fresh })).toEqual({ ready: false });
    expect(await httpReady()).toBe(400);
    expect(await rpc('ModelReady', { name: fresh, version: '1' })).toEqual({ ready: false });
    const inputs = [
      { name: 'PU_DO', datatype: 'BYTES', shape: [1, 1], contents: { bytes_contents: [Buffer.from('10_50')] } },
      { name: 'trip_distance', datatype: 'FP32', shape: [1, 1], contents: { fp32_contents: [4] } },
    ];
    await rpc('ModelInfer', { model_name: fresh, inputs });
    expect(await rpc('ModelReady', { name: fresh })).toEqual({ ready: true });
    expect(await httpReady()).toBe(200);
    await expect(rpc('ModelReady', { name: uniqueName('missing') })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('a promote under gRPC load: zero failed calls, and the version switches', async () => {
    const name = uniqueName('promote');
    await registerAs(env, name, 'trip-duration', 'production');
    await registerAs(env, name, 'trip-duration');
    const request = { model_name: `${name}`, inputs: rideInputs(RIDES.slice(0, 1)).map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })) };
    const one = {
      ...request,
      inputs: [
        { ...request.inputs[0], contents: { bytes_contents: [Buffer.from('10_50')] } },
        { ...request.inputs[1], contents: { fp32_contents: [4] } },
      ],
    };
    const seen = new Set<string>();
    let failures = 0;
    let calls = 0;
    let stop = false;
    const loop = async () => {
      while (!stop) {
        try {
          seen.add(String((await rpc('ModelInfer', one)).model_version));
        } catch {
          failures++;
        }
        calls++;
      }
    };
    const loops = Array.from({ length: 4 }, loop);
    await new Promise((r) => setTimeout(r, 500));
    await env.store.promote(name, 2, 'production');
    const until = Date.now() + 20_000;
    while (!seen.has('2') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(loops);
    expect(failures).toBe(0);
    expect(calls).toBeGreaterThan(20);
    expect([...seen].sort()).toEqual(['1', '2']);
  });
});
