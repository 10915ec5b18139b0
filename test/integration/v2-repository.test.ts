// The Open Inference Protocol's model repository extension with an off-the-shelf client: the
// pinned tritonclient.http lists the registry's versions with their state in this process,
// loads and unloads them; the default model stays loaded. /v2/health/ready answers as the
// protocol says (200 true, a 4xx with an empty body false) while the default model is missing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestEnv, registerExample, type TestEnv } from '../helpers.ts';
import { ensureTritonClient, tritonCall, type TritonCall } from '../setup/triton-client.ts';
import { freshName, registerAs, serveConfig, startServer, waitFor, type TestServer } from './serve-support.ts';
import { listenLocal, rideInputs } from './v2-support.ts';

const TOKEN = 'v2-repository-token-0123456789';
let env: TestEnv;
let server: TestServer;
let host: string;
let base: string;
const names = { duration: '', other: '' };

async function ops(list: TritonCall['ops'], url = host): Promise<Array<Record<string, unknown>>> {
  const answer = await tritonCall({ protocol: 'http', url, model: '', token: TOKEN, ops: list });
  if (!('answers' in answer)) throw new Error(`tritonclient answered ${JSON.stringify(answer)}`);
  return answer.answers;
}

/** A POST with a JSON body, or with none (no content type, as tritonclient sends the index call). */
const post = (url: string, body?: unknown) =>
  fetch(`${base}${url}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

type IndexEntry = { name: string; version: string; state: string; reason?: string };
const of = (index: unknown, name: string) => (index as IndexEntry[]).filter((e) => e.name === name);

beforeAll(async () => {
  await ensureTritonClient();
  env = await openTestEnv();
  names.duration = (await registerExample(env, 'trip-duration')).name;
  names.other = freshName('repo');
  await registerAs(env, names.other, 'trip-duration');
  await registerAs(env, names.other, 'fare');
  server = await startServer(env, serveConfig({ defaultModel: `${names.duration}@production`, apiToken: TOKEN }));
  host = await listenLocal(server);
  base = `http://${host}`;
}, 600_000);

afterAll(async () => {
  await server?.close();
  await env?.close();
});

describe('the repository extension through tritonclient.http', () => {
  it('server metadata names it beside the binary extension', async () => {
    const meta = await tritonCall({ protocol: 'http', url: host, model: names.duration, token: TOKEN });
    expect(meta).toMatchObject({ server: { extensions: ['binary_tensor_data', 'model_repository'] } });
  });

  it('index, load, unload: every version with its state here, the named one loaded and released', async () => {
    const [before, loaded, after, ready, unloaded, last, notReady] = await ops([
      ['index'],
      ['load', names.other],
      ['index'],
      ['model_ready', names.other],
      ['unload', names.other],
      ['index'],
      ['model_ready', names.other],
    ]);
    expect(of(before.index, names.duration)).toEqual([{ name: names.duration, version: '1', state: 'READY' }]);
    expect(of(before.index, names.other)).toEqual([
      { name: names.other, version: '1', state: 'UNAVAILABLE', reason: 'not loaded in this process' },
      { name: names.other, version: '2', state: 'UNAVAILABLE', reason: 'not loaded in this process' },
    ]);
    expect(loaded).toEqual({ loaded: names.other });
    // A bare name is the production alias, else the latest version: 2.
    expect(of(after.index, names.other).map((e) => [e.version, e.state])).toEqual([
      ['1', 'UNAVAILABLE'],
      ['2', 'READY'],
    ]);
    expect(ready).toEqual({ model_ready: true });
    expect(unloaded).toEqual({ unloaded: names.other });
    expect(of(last.index, names.other).map((e) => e.state)).toEqual(['UNAVAILABLE', 'UNAVAILABLE']);
    expect(notReady).toEqual({ model_ready: false });
  });

  it('a loaded version stays through the idle sweep; an infer call after unload loads it again', async () => {
    await ops([['load', names.other]]);
    expect(server.models.dropIdle(Date.now() + 86_400_000)).not.toContain(`${names.other}@2`);
    expect(server.models.isLoaded({ name: names.other, version: 2 })).toBe(true);
    await ops([['unload', names.other]]);
    expect(server.models.isLoaded({ name: names.other, version: 2 })).toBe(false);
    // Version 1 is the trip-duration model the ride tensors fit.
    expect((await post(`/v2/repository/models/${names.other}/load`, { parameters: { version: '1' } })).status).toBe(200);
    expect((await post(`/v2/repository/models/${names.other}/unload`)).status).toBe(200);
    expect(server.models.isLoaded({ name: names.other, version: 1 })).toBe(false);
    const answer = await tritonCall({ protocol: 'http', url: host, model: names.other, version: '1', token: TOKEN, inputs: rideInputs() });
    expect('outputs' in answer).toBe(true);
    expect(server.models.isLoaded({ name: names.other, version: 1 })).toBe(true);
    await ops([['unload', names.other]]);
  });

  it('the default model stays loaded; a config, an unknown model and a wrong token are refused', async () => {
    const [kept, withConfig, unknown, index] = await ops([['unload', names.duration], ['load', names.other, '{"backend": "onnxruntime"}'], ['load', 'no-such-model'], ['index']]);
    expect(kept).toMatchObject({
      status: '409',
      error: expect.stringMatching(new RegExp(`model ${names.duration} version 1 serves ${names.duration}@production, which this service needs to be ready`)),
    });
    expect(withConfig).toMatchObject({ status: '400', error: expect.stringMatching(/parameter 'config': mldeploy loads registered versions only/) });
    expect(unknown).toMatchObject({ status: '404', error: expect.stringMatching(/no-such-model/) });
    expect(of(index.index, names.duration)).toEqual([{ name: names.duration, version: '1', state: 'READY' }]);
    const refused = await tritonCall({ protocol: 'http', url: host, model: '', token: 'wrong', ops: [['index']] });
    expect(refused).toMatchObject({ answers: [{ status: '401' }] });
  });

  it('over plain HTTP: a version by parameters, {"ready": true} lists the loaded ones only', async () => {
    const load = await post(`/v2/repository/models/${names.other}/load`, { parameters: { version: '1' } });
    expect(load.status).toBe(200);
    expect(await load.json()).toEqual({ name: names.other, versions: ['1'], state: 'READY' });
    const ready = (await (await post('/v2/repository/index', { ready: true })).json()) as IndexEntry[];
    expect(ready.every((e) => e.state === 'READY')).toBe(true);
    expect(of(ready, names.other)).toEqual([{ name: names.other, version: '1', state: 'READY' }]);
    const unload = await post(`/v2/repository/models/${names.other}/unload`, { parameters: { version: 1, unload_dependents: false } });
    expect(await unload.json()).toEqual({ name: names.other, versions: ['1'], state: 'UNAVAILABLE' });
    const missing = await post(`/v2/repository/models/${names.other}/load`, { parameters: { version: '9' } });
    expect(missing.status).toBe(404);
  });
});

describe('/v2/health/ready while the service is not ready', () => {
  it('answers 400 with an empty body until the default model is loaded, then 200; tritonclient reads false, then true', async () => {
    const later = freshName('later');
    const s = await startServer(env, serveConfig({ defaultModel: later, apiToken: TOKEN }));
    try {
      const url = await listenLocal(s);
      const res = await fetch(`http://${url}/v2/health/ready`);
      expect(res.status).toBe(400);
      expect(await res.text()).toBe('');
      expect(await ops([['server_ready']], url)).toEqual([{ server_ready: false }]);
      await registerAs(env, later, 'trip-duration');
      await waitFor(async () => (await fetch(`http://${url}/v2/health/ready`)).status === 200, 'v2 readiness');
      expect(await ops([['server_ready']], url)).toEqual([{ server_ready: true }]);
    } finally {
      await s.close();
    }
  });
});
