// The Open Inference Protocol's HTTP binary tensor extension with an off-the-shelf client:
// the pinned tritonclient.http with its defaults (binary inputs, binary outputs when none
// are named) gets the same outputs as the JSON path for FP32, INT64, FP64, BOOL and BYTES
// inputs and an output selection; a wrong token is a 401.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerModel } from '../../src/registry/register.ts';
import { FIXTURES, openTestEnv, registerExample, uniqueName, type TestEnv } from '../helpers.ts';
import { tritonCall, ensureTritonClient, type TritonTensor } from '../setup/triton-client.ts';
import { serveConfig, startServer, type TestServer } from './serve-support.ts';
import { dtypeInputs, dtypesExpected, listenLocal, rideInputs, viaJson } from './v2-support.ts';

const TOKEN = 'v2-binary-token-0123456789';
let env: TestEnv;
let server: TestServer;
let host: string;
const models = { duration: '', dtypes: '', classifier: '' };

beforeAll(async () => {
  await ensureTritonClient();
  env = await openTestEnv();
  models.duration = (await registerExample(env, 'trip-duration')).name;
  const fixture = (file: string) => fs.readFileSync(path.join(FIXTURES, file));
  models.dtypes = (await registerModel(env.store, { name: uniqueName('dtypes'), bytes: fixture('dtypes.onnx'), maxBytes: 1 << 26 })).name;
  const spec = JSON.parse(fixture('classifier_nozipmap.spec.json').toString());
  models.classifier = (await registerModel(env.store, { name: uniqueName('classifier'), bytes: fixture('classifier_nozipmap.onnx'), spec, maxBytes: 1 << 26 })).name;
  server = await startServer(env, serveConfig({ defaultModel: `${models.duration}@production`, apiToken: TOKEN }));
  host = await listenLocal(server);
}, 600_000);

afterAll(async () => {
  await server?.close();
  await env?.close();
});

describe('tritonclient.http with its defaults (binary tensors)', () => {
  it('FP32 and BYTES inputs: the same outputs as JSON, sent and answered in binary', async () => {
    const answer = await tritonCall({ protocol: 'http', url: host, model: models.duration, token: TOKEN, inputs: rideInputs() });
    expect(answer).toMatchObject({ sent_binary: true, binary_outputs: ['variable'] });
    const expected = await viaJson(`http://${host}`, TOKEN, models.duration, rideInputs());
    expect('outputs' in answer && answer.outputs).toEqual(expected);
  });

  it('INT64, FP64, BOOL and BYTES inputs (one empty string): the same outputs as JSON', async () => {
    const answer = await tritonCall({ protocol: 'http', url: host, model: models.dtypes, version: '1', token: TOKEN, inputs: dtypeInputs() });
    expect(answer).toMatchObject({ sent_binary: true, binary_outputs: ['y'] });
    const expected = await viaJson(`http://${host}`, TOKEN, models.dtypes, dtypeInputs());
    expect('outputs' in answer && answer.outputs).toEqual(expected);
    const { predictions } = dtypesExpected();
    (answer as { outputs: Record<string, TritonTensor> }).outputs.y.data.forEach((v, k) => expect(v).toBeCloseTo(predictions[k], 4));
  });

  it('an output selection: only the named output, in binary (INT64 label), the same as JSON', async () => {
    const inputs: TritonTensor[] = [
      { name: 'x1', datatype: 'FP32', shape: [3, 1], data: [-2, 0.5, 3] },
      { name: 'x2', datatype: 'FP32', shape: [3, 1], data: [1, -1, 2] },
    ];
    for (const selection of [['label'], ['probabilities'], ['probabilities', 'label']]) {
      const answer = await tritonCall({ protocol: 'http', url: host, model: models.classifier, token: TOKEN, inputs, outputs: selection });
      expect(answer).toMatchObject({ sent_binary: true, binary_outputs: selection });
      expect(Object.keys((answer as { outputs: object }).outputs).sort()).toEqual([...selection].sort());
      expect((answer as { outputs: object }).outputs).toEqual(await viaJson(`http://${host}`, TOKEN, models.classifier, inputs, selection));
    }
  });

  it('server and model metadata name the binary extension; a wrong token is refused with 401', async () => {
    const meta = await tritonCall({ protocol: 'http', url: host, model: models.duration, token: TOKEN });
    expect(meta).toMatchObject({ live: true, ready: true, model_ready: true, server: { name: 'mldeploy', extensions: expect.arrayContaining(['binary_tensor_data']) } });
    const refused = await tritonCall({ protocol: 'http', url: host, model: models.duration, token: 'wrong', inputs: rideInputs() });
    expect(refused).toMatchObject({ status: '401' });
  });

  it('a malformed binary body is a precise 400 and the service goes on answering', async () => {
    const json = Buffer.from(JSON.stringify({ inputs: [{ name: 'trip_distance', datatype: 'FP32', shape: [1, 1], parameters: { binary_data_size: 4 } }] }));
    const send = (body: Buffer, length: number) =>
      fetch(`http://${host}/v2/models/${models.duration}/infer`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'Inference-Header-Content-Length': String(length) },
        body: new Uint8Array(body),
      });
    const truncated = await send(Buffer.concat([json, Buffer.from([0, 0])]), json.length);
    expect(truncated.status).toBe(400);
    expect(((await truncated.json()) as { error: string }).error).toBe(`input 'trip_distance': binary_data_size 4 goes past the end of the body (2 bytes of tensor data left)`);
    const longHeader = await send(json, json.length + 10);
    expect(longHeader.status).toBe(400);
    expect(((await longHeader.json()) as { error: string }).error).toBe(
      `Inference-Header-Content-Length is ${json.length + 10} bytes, longer than the body (${json.length} bytes)`,
    );
    const answer = await tritonCall({ protocol: 'http', url: host, model: models.duration, token: TOKEN, inputs: rideInputs() });
    expect('outputs' in answer).toBe(true);
  });
});
