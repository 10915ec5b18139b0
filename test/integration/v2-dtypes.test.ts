// Every tensor type onnxruntime-node feeds and returns, on every path: a fixture with FP16,
// INT8/16/32 and UINT8/16/32/64 inputs (and each echoed back as an output of its own type)
// scores the same through /predict, /v1, v2 JSON, tritonclient.http (binary) and
// tritonclient.grpc (raw contents). A value outside its type's range is a per-record error
// naming the field on /predict and /v1, and a 400 naming the input on v2. A model with a type
// onnxruntime-node has no tensor for (bfloat16) is refused at registration, the type named.
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelCache } from '../../src/registry/runtime.ts';
import { registerModel } from '../../src/registry/register.ts';
import { InferenceService } from '../../src/serve/grpc/inference-service.ts';
import { startWebService, type WebService } from '../../src/serve/service.ts';
import { freePort } from '../../src/stack/ports.ts';
import { FIXTURES, openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { ensureTritonClient, tritonCall, type TritonTensor } from '../setup/triton-client.ts';
import { serveConfig, waitFor } from './serve-support.ts';
import { viaJson } from './v2-support.ts';

const TOKEN = 'v2-dtypes-token-0123456789';
const TYPES: Record<string, string> = { f16: 'FP16', i8: 'INT8', i16: 'INT16', i32: 'INT32', u8: 'UINT8', u16: 'UINT16', u32: 'UINT32', u64: 'UINT64' };
type Row = Record<string, number>;
const expected = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'dtypes_wide.expected.json'), 'utf8')) as { records: Row[]; predictions: number[] };

let env: TestEnv;
let models: ModelCache;
let service: WebService;
let host: string;
let model: string;

const inputsOf = (records: Row[]): TritonTensor[] =>
  Object.entries(TYPES).map(([name, datatype]) => ({ name, datatype, shape: [records.length, 1], data: records.map((r) => r[name]) }));

async function post(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${service.url}${url}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  await ensureTritonClient();
  env = await openTestEnv();
  model = (await registerModel(env.store, { name: uniqueName('wide'), bytes: fs.readFileSync(path.join(FIXTURES, 'dtypes_wide.onnx')), maxBytes: 1 << 26 })).name;
  models = new ModelCache(env.store, 1);
  const config = serveConfig({ defaultModel: model, apiToken: TOKEN, port: 0, grpcPort: await freePort(), predictionLog: true });
  service = await startWebService({ pool: env.pool, store: env.store, models, config });
  host = service.url.replace('http://', '');
}, 600_000);

afterAll(async () => {
  await service?.close();
  await models?.release();
  await env?.close();
});

describe('every onnxruntime-node tensor type', () => {
  it('refuses bfloat16 inputs and outputs at registration, naming the type', async () => {
    for (const file of ['bfloat16_input.onnx', 'bfloat16_output.onnx']) {
      await expect(registerModel(env.store, { name: uniqueName('bf16'), bytes: fs.readFileSync(path.join(FIXTURES, file)), maxBytes: 1 << 26 })).rejects.toThrow(
        /a model input or output has type bfloat16 \(ONNX element type 16\), which onnxruntime-node cannot feed or return; it handles float32, float64, float16, int8/,
      );
    }
  });

  it('v2 metadata names each input and output datatype', async () => {
    const res = await fetch(`${service.url}/v2/models/${model}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const meta = (await res.json()) as { inputs: TritonTensor[]; outputs: TritonTensor[] };
    expect(meta.inputs.map((t) => [t.name, t.datatype])).toEqual(Object.entries(TYPES));
    expect(meta.outputs.map((t) => [t.name, t.datatype])).toEqual([['y', 'FP32'], ...Object.entries(TYPES).map(([n, d]) => [`${n}_out`, d])]);
  });

  it('records through /predict and /v1 score as onnxruntime does in Python', async () => {
    for (const [i, record] of expected.records.entries()) {
      const one = await post('/predict', record);
      expect(one.status, JSON.stringify(one.body)).toBe(200);
      expect(one.body.duration).toBe(expected.predictions[i]);
    }
    const many = await post(`/v1/models/${model}/predict`, expected.records);
    expect(many.body.predictions).toEqual(expected.predictions);
  });

  it('v2 JSON: y as expected, every input echoed with its own datatype and values', async () => {
    const outputs = await viaJson(service.url, TOKEN, model, inputsOf(expected.records));
    expect(outputs.y.data).toEqual(expected.predictions);
    for (const [name, datatype] of Object.entries(TYPES)) {
      expect(outputs[`${name}_out`]).toEqual({ name: `${name}_out`, datatype, shape: [expected.records.length, 1], data: expected.records.map((r) => r[name]) });
    }
  });

  it('tritonclient.http (binary) and tritonclient.grpc (raw contents) get the same outputs as JSON', async () => {
    const json = await viaJson(service.url, TOKEN, model, inputsOf(expected.records));
    const http = await tritonCall({ protocol: 'http', url: host, model, token: TOKEN, inputs: inputsOf(expected.records) });
    expect(http).toMatchObject({ sent_binary: true });
    expect('outputs' in http && http.outputs).toEqual(json);
    const grpc = await tritonCall({ protocol: 'grpc', url: service.grpcAddress!, model, token: TOKEN, inputs: inputsOf(expected.records) });
    expect('outputs' in grpc && grpc.outputs).toEqual(json);
  });

  it('gRPC `contents`: FP16 has no contents field in the protocol, so an FP16 input there (beside integers in their fields) is INVALID_ARGUMENT naming it', async () => {
    const client = new InferenceService(service.grpcAddress!, grpc.credentials.createInsecure()) as unknown as {
      ModelInfer(r: unknown, md: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: Record<string, unknown>) => void): void;
      close(): void;
    };
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${TOKEN}`);
    const call = (request: unknown) => new Promise<Record<string, unknown>>((resolve, reject) => client.ModelInfer(request, md, (err, res) => (err ? reject(err) : resolve(res))));
    const { records } = expected;
    const field: Record<string, string> = {
      i8: 'int_contents',
      i16: 'int_contents',
      i32: 'int_contents',
      u8: 'uint_contents',
      u16: 'uint_contents',
      u32: 'uint_contents',
      u64: 'uint64_contents',
    };
    const integers = Object.entries(TYPES)
      .filter(([name]) => name !== 'f16')
      .map(([name, datatype]) => ({ name, datatype, shape: [records.length, 1], contents: { [field[name]]: records.map((r) => (name === 'u64' ? String(r[name]) : r[name])) } }));
    try {
      await expect(call({ model_name: model, inputs: [...integers, { name: 'f16', datatype: 'FP16', shape: [records.length, 1], contents: {} }] })).rejects.toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: "input 'f16': FP16 has no contents field in the protocol; send it in raw_input_contents",
      });
    } finally {
      client.close();
    }
  });

  it('the prediction log holds each row with its inputs as numbers (float16 decoded)', async () => {
    const id = uniqueName('wide-log');
    const res = await fetch(`${service.url}/v2/models/${model}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ id, inputs: inputsOf(expected.records) }),
    });
    expect(res.status).toBe(200);
    const entries = async () => (await env.pool.query('SELECT record_index, features, prediction FROM prediction_log WHERE request_id = $1 ORDER BY record_index', [id])).rows;
    await waitFor(async () => (await entries()).length === expected.records.length, `the prediction log entries of ${id}`);
    expect((await entries()).map((e) => ({ features: e.features, prediction: e.prediction }))).toEqual(
      expected.records.map((r, i) => ({ features: r, prediction: expected.predictions[i] })),
    );
  });

  const OUT_OF_RANGE: Array<[string, number, string]> = [
    ['i8', 128, 'is out of range for int8 (-128 to 127), got 128'],
    ['i16', -32769, 'is out of range for int16 (-32768 to 32767), got -32769'],
    ['i32', 2147483648, 'is out of range for int32 (-2147483648 to 2147483647), got 2147483648'],
    ['u8', 256, 'is out of range for uint8 (0 to 255), got 256'],
    ['u16', -1, 'is out of range for uint16 (0 to 65535), got -1'],
    ['u32', 4294967296, 'is out of range for uint32 (0 to 4294967295), got 4294967296'],
    ['u64', -1, 'is out of range for uint64 (0 to 9007199254740991), got -1'],
    ['f16', 70000, 'is out of range for float16 (±65504), got 70000'],
    ['i32', 1.5, 'must be an integer, got 1.5'],
  ];

  it.each(OUT_OF_RANGE)('%s = %s: a per-record error naming the field on /predict and /v1, a 400 naming the input on v2', async (field, value, problem) => {
    const bad = { ...expected.records[0], [field]: value };
    const reason = `${field} ${problem}`;
    const one = await post('/predict', bad);
    expect(one.status).toBe(400);
    expect(one.body.error).toBe(reason);
    expect(one.body.errors).toEqual([{ index: 0, field, reason }]);
    const many = await post(`/v1/models/${model}/predict`, [expected.records[1], bad]);
    expect(many.status).toBe(400);
    expect(many.body.errors).toEqual([{ index: 1, field, reason }]);
    const v2 = await post(`/v2/models/${model}/infer`, { inputs: inputsOf([bad]) });
    expect(v2.status).toBe(400);
    expect(v2.body.error).toBe(`input '${field}': element 0 ${problem}`);
  });
});
