// The web service against a real PostgreSQL: every route, validation, limits, auth,
// parity across the three prediction paths, and the prediction log.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelCache } from '../../src/registry/runtime.ts';
import { openTestEnv, registerExample, type TestEnv } from '../helpers.ts';
import { inferenceDuration } from '../../src/inference/metrics.ts';
import { RIDE, RIDES, registerAs, freshName, serveConfig, startServer, waitFor, type TestServer } from './serve-support.ts';

let env: TestEnv;
let name: string;
let server: TestServer;

const TOKEN = 'test-token-0123456789abcdef';

beforeAll(async () => {
  env = await openTestEnv();
  name = (await registerExample(env, 'trip-duration')).name;
  server = await startServer(env, serveConfig({ defaultModel: `${name}@production`, maxRecords: 50, bodyLimitBytes: 64 * 1024 }));
});
afterAll(async () => {
  await server?.close();
  await env.close();
});

const post = (url: string, payload: unknown, headers: Record<string, string> = {}) => server.app.inject({ method: 'POST', url, payload: payload as object, headers });
const postRaw = (url: string, body: string) => server.app.inject({ method: 'POST', url, payload: body, headers: { 'content-type': 'application/json' } });

function v2Inputs(rides: Array<{ PULocationID: number; DOLocationID: number; trip_distance: number }>) {
  return [
    { name: 'PU_DO', shape: [rides.length, 1], datatype: 'BYTES', data: rides.map((r) => `${r.PULocationID}_${r.DOLocationID}`) },
    { name: 'trip_distance', shape: [rides.length, 1], datatype: 'FP32', data: rides.map((r) => r.trip_distance) },
  ];
}

describe('POST /predict (course-compatible)', () => {
  it('answers the duration and the version that served it', async () => {
    const res = await post('/predict', RIDE);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(Object.keys(body).sort()).toEqual(['duration', 'model_version']);
    expect(body.model_version).toBe(1);
    expect(body.duration).toBeGreaterThanOrEqual(1);
    expect(body.duration).toBeLessThanOrEqual(180);
  });

  it.each([
    [{ PULocationID: 10, DOLocationID: 50 }, /trip_distance is missing/],
    [{ ...RIDE, trip_distance: 'NaN' }, /trip_distance must be a finite number, got "NaN"/],
    [{ ...RIDE, trip_distance: 'Infinity' }, /trip_distance must be a finite number/],
    [{ ...RIDE, trip_distance: null }, /trip_distance is null/],
    [{ ...RIDE, DOLocationID: { x: 1 } }, /DOLocationID must be a string or a finite number/],
  ])('rejects %j with a 400 naming the field', async (record, message) => {
    const res = await post('/predict', record);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(message);
  });

  it.each([
    ['malformed JSON', '{"PULocationID": 10,'],
    ['a JSON array', '[1, 2, 3]'],
    ['a JSON string', '"ride"'],
    ['null', 'null'],
    ['a prototype-poisoning key', '{"__proto__": {"x": 1}, "PULocationID": 1}'],
  ])('rejects %s with a 400', async (_what, body) => {
    const res = await postRaw('/predict', body);
    expect(res.statusCode).toBe(400);
    expect(typeof res.json().error).toBe('string');
  });

  it('answers 413 to a body over the limit', async () => {
    const res = await post('/predict', { ...RIDE, padding: 'x'.repeat(100 * 1024) });
    expect(res.statusCode).toBe(413);
    expect(res.json().error).toMatch(/too large/i);
  });

  it('answers 415 to a body that is not JSON', async () => {
    const res = await server.app.inject({ method: 'POST', url: '/predict', payload: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(res.statusCode).toBe(415);
  });
});

describe('POST /v1/models/{ref}/predict', () => {
  it('scores one record, or a list in request order', async () => {
    const one = await post(`/v1/models/${name}/predict`, RIDES[0]);
    expect(one.statusCode).toBe(200);
    expect(one.json()).toMatchObject({ model: name, version: 1 });
    const many = await post(`/v1/models/${name}@production/predict`, RIDES);
    expect(many.statusCode).toBe(200);
    const { predictions } = many.json();
    expect(predictions).toHaveLength(RIDES.length);
    expect(predictions[0]).toBe(one.json().predictions[0]);
    const reversed = await post(`/v1/models/${name}@1/predict`, [...RIDES].reverse());
    expect(reversed.json().predictions).toEqual([...predictions].reverse());
  });

  it('rejects a list with a bad record, naming its position and field', async () => {
    const res = await post(`/v1/models/${name}/predict`, [RIDES[0], { ...RIDES[1], trip_distance: '3.5' }]);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(/^record 1: trip_distance must be a finite number/);
    expect(res.json().errors[0]).toMatchObject({ index: 1, field: 'trip_distance' });
  });

  it('refuses more records than the limit', async () => {
    const res = await post(
      `/v1/models/${name}/predict`,
      Array.from({ length: 51 }, () => RIDE),
    );
    expect(res.statusCode).toBe(400);
  });

  it('answers 404 for an unknown model, alias or version and 400 for an invalid reference', async () => {
    for (const ref of [freshName('missing'), `${name}@staging`, `${name}@99`]) {
      const res = await post(`/v1/models/${ref}/predict`, RIDE);
      expect(res.statusCode).toBe(404);
      expect(res.json().error).toMatch(/does not exist/);
    }
    expect((await post(`/v1/models/${encodeURIComponent('bad name!')}/predict`, RIDE)).statusCode).toBe(400);
  });
});

describe('Open Inference Protocol v2', () => {
  it('serves server metadata and health', async () => {
    expect((await server.app.inject('/v2')).json()).toMatchObject({ name: 'mldeploy', extensions: ['binary_tensor_data', 'model_repository'] });
    expect((await server.app.inject('/v2/health/live')).statusCode).toBe(200);
    expect((await server.app.inject('/v2/health/ready')).statusCode).toBe(200);
  });

  it('describes a model with v2 datatypes and shapes, with and without a version', async () => {
    for (const url of [`/v2/models/${name}`, `/v2/models/${name}/versions/1`]) {
      const res = await server.app.inject(url);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({
        name,
        versions: ['1'],
        platform: 'onnxruntime_onnx',
        inputs: [
          { name: 'PU_DO', datatype: 'BYTES', shape: [-1, 1] },
          { name: 'trip_distance', datatype: 'FP32', shape: [-1, 1] },
        ],
        outputs: [{ name: 'variable', datatype: 'FP32', shape: [-1, 1] }],
      });
    }
    expect((await server.app.inject(`/v2/models/${name}/ready`)).json()).toEqual({ name, version: '1', ready: true });
    expect((await server.app.inject(`/v2/models/${name}/versions/2/ready`)).statusCode).toBe(404);
    expect((await server.app.inject(`/v2/models/${freshName('missing')}`)).statusCode).toBe(404);
  });

  it('infers on raw tensors, echoing the id, accepting nested data and no content type', async () => {
    const res = await post(`/v2/models/${name}/versions/1/infer`, { id: 'req-7', inputs: v2Inputs(RIDES.slice(0, 2)) });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ model_name: name, model_version: '1', id: 'req-7' });
    expect(body.outputs).toHaveLength(1);
    expect(body.outputs[0]).toMatchObject({ name: 'variable', datatype: 'FP32', shape: [2, 1] });

    const nested = v2Inputs(RIDES.slice(0, 2)).map((t) => ({ ...t, data: t.data.map((v: unknown) => [v]) }));
    const raw = await server.app.inject({ method: 'POST', url: `/v2/models/${name}/infer`, payload: JSON.stringify({ inputs: nested, outputs: [{ name: 'variable' }] }) });
    expect(raw.statusCode).toBe(200);
    expect(raw.json().outputs[0].data).toEqual(body.outputs[0].data);
    expect(raw.json().id).toBeUndefined();
  });

  it.each([
    ['a wrong datatype', (i: any[]) => [i[0], { ...i[1], datatype: 'FP64' }], /datatype FP32, not FP64/],
    ['an unknown datatype', (i: any[]) => [i[0], { ...i[1], datatype: 'FP8' }], /datatype/],
    ['a wrong rank', (i: any[]) => [i[0], { ...i[1], shape: [2] }], /rank 1, not 2/],
    ['a wrong fixed dimension', (i: any[]) => [i[0], { ...i[1], shape: [1, 2] }], /dimension 1 must be 1/],
    ['too few elements', (i: any[]) => [i[0], { ...i[1], data: [1] }], /needs 2 elements, got 1/],
    ['different batch sizes', (i: any[]) => [i[0], { ...i[1], shape: [1, 1], data: [1] }], /1 rows, the other inputs 2/],
    ['a string where FP32 is due', (i: any[]) => [i[0], { ...i[1], data: ['1', 2] }], /element 0 must be a finite number/],
    ['a missing input', (i: any[]) => [i[0]], /'trip_distance' missing/],
    ['an unknown input', (i: any[]) => [...i, { ...i[1], name: 'extra' }], /no input 'extra'/],
    ['a negative dimension', (i: any[]) => [i[0], { ...i[1], shape: [-2, 1] }], /shape/],
    ['too many rows', (i: any[]) => i.map((t) => ({ ...t, shape: [51, 1], data: Array(51).fill(t.data[0]) })), /at most 50/],
  ])('rejects %s with a 400', async (_what, change, message) => {
    const res = await post(`/v2/models/${name}/infer`, { inputs: change(v2Inputs(RIDES.slice(0, 2))) });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(message);
  });

  it('rejects an unknown output, a binary body whose header length cuts the JSON, and answers 404 for an unknown model', async () => {
    const unknownOutput = await post(`/v2/models/${name}/infer`, { inputs: v2Inputs([RIDE]), outputs: [{ name: 'nope' }] });
    expect(unknownOutput.statusCode).toBe(400);
    const binary = await post(`/v2/models/${name}/infer`, { inputs: v2Inputs([RIDE]) }, { 'inference-header-content-length': '10' });
    expect(binary.statusCode).toBe(400);
    expect(binary.json().error).toMatch(/^the JSON header \(the first 10 bytes\) is not valid JSON/);
    expect((await post(`/v2/models/${freshName('missing')}/infer`, { inputs: v2Inputs([RIDE]) })).statusCode).toBe(404);
  });
});

describe('parity', () => {
  it('the same rides get identical predictions from /predict, /v1, /v2 infer and LoadedModel.predict (the batch path)', async () => {
    const fromPredict = await Promise.all(RIDES.map(async (r) => (await post('/predict', r)).json().duration));
    const fromV1 = (await post(`/v1/models/${name}/predict`, RIDES)).json().predictions;
    const fromV2 = (await post(`/v2/models/${name}/infer`, { inputs: v2Inputs(RIDES) })).json().outputs[0].data;
    const cache = new ModelCache(env.store, 1);
    try {
      const batch = await (await cache.resolve(name)).predict(RIDES);
      expect(batch.errors).toEqual([]);
      for (const p of batch.predictions) expect(p! > 1 && p! < 180).toBe(true);
      expect(fromPredict).toEqual(batch.predictions);
      expect(fromV1).toEqual(batch.predictions);
      expect(fromV2).toEqual(batch.predictions);
    } finally {
      await cache.release();
    }
  });

  it('a large request scored in slices equals the same records scored one call at a time', async () => {
    const rides = Array.from({ length: 600 }, (_, i) => ({ PULocationID: 1 + (i % 263), DOLocationID: 1 + ((i * 7) % 263), trip_distance: 0.5 + (i % 40) }));
    const big = await startServer(env, serveConfig({ defaultModel: `${name}@production` }));
    try {
      const res = await big.app.inject({ method: 'POST', url: `/v1/models/${name}/predict`, payload: rides });
      expect(res.statusCode).toBe(200);
      const direct = await (await big.models.resolve(name)).predict(rides);
      expect(res.json().predictions).toEqual(direct.predictions);
      const v2 = await big.app.inject({ method: 'POST', url: `/v2/models/${name}/infer`, payload: { inputs: v2Inputs(rides) } });
      expect(v2.json().outputs[0].shape).toEqual([600, 1]);
      expect(v2.json().outputs[0].data.map((v: number) => Math.min(180, Math.max(1, v)))).toEqual(direct.predictions);
    } finally {
      await big.close();
    }
  });
});

describe('no input causes a 500', () => {
  it('arbitrary JSON bodies get a 2xx or a 4xx with an error message on every prediction route', async () => {
    const tensor = fc.record({
      name: fc.constantFrom('PU_DO', 'trip_distance', 'other'),
      shape: fc.array(fc.integer({ min: -1, max: 4 }), { maxLength: 3 }),
      datatype: fc.constantFrom('FP32', 'FP64', 'INT64', 'BYTES', 'BOOL', 'UINT8'),
      data: fc.array(fc.oneof(fc.double(), fc.integer(), fc.string(), fc.boolean(), fc.constant(null), fc.array(fc.double(), { maxLength: 2 })), { maxLength: 8 }),
    });
    const bodies = fc.oneof(
      fc.jsonValue(),
      fc.record({ PULocationID: fc.jsonValue(), DOLocationID: fc.jsonValue(), trip_distance: fc.jsonValue() }),
      fc.record({ inputs: fc.array(tensor, { maxLength: 3 }), outputs: fc.option(fc.array(fc.record({ name: fc.string() }), { maxLength: 2 }), { nil: undefined }) }),
    );
    const urls = ['/predict', `/v1/models/${name}/predict`, `/v2/models/${name}/infer`];
    await fc.assert(
      fc.asyncProperty(bodies, fc.constantFrom(...urls), async (body, url) => {
        const res = await postRaw(url, JSON.stringify(body) ?? 'null');
        expect(res.statusCode).toBeLessThan(500);
        if (res.statusCode >= 400) expect(typeof res.json().error).toBe('string');
      }),
      { numRuns: 300 },
    );
  });
});

describe('operations', () => {
  it('reports health, readiness, metrics and the OpenAPI document', async () => {
    expect((await server.app.inject('/healthz')).json()).toEqual({ status: 'ok' });
    const ready = await server.app.inject('/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json().models).toMatchObject({ [`${name}@production`]: 1 });
    const metrics = (await server.app.inject('/metrics')).body;
    expect(metrics).toContain(`mldeploy_http_requests_total{route="/predict",model="${name}",version="1",status="200"}`);
    expect(metrics).toContain('mldeploy_inference_duration_seconds_bucket');
    expect(metrics).toContain('mldeploy_http_request_duration_seconds_bucket');
    const openapi = (await server.app.inject('/openapi.json')).json();
    expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(['/predict', '/v1/models/{ref}/predict', '/v2/models/{name}/infer', '/healthz']));
    expect((await server.app.inject('/docs')).statusCode).toBe(200);
    expect((await server.app.inject('/bench/noop')).statusCode).toBe(404);
  });

  it('is not ready while the default model does not exist, and becomes ready once it is registered', async () => {
    const later = freshName('later');
    const s = await startServer(env, serveConfig({ defaultModel: later }));
    try {
      expect((await s.app.inject('/readyz')).statusCode).toBe(503);
      expect((await s.app.inject({ method: 'POST', url: '/predict', payload: RIDE })).statusCode).toBe(404);
      await registerAs(env, later, 'trip-duration');
      await waitFor(async () => (await s.app.inject('/readyz')).statusCode === 200, 'readiness');
      expect((await s.app.inject({ method: 'POST', url: '/predict', payload: RIDE })).json().model_version).toBe(1);
    } finally {
      await s.close();
    }
  });
});

describe('auth', () => {
  it('requires the bearer token everywhere but health and metrics, on plugin routes too', async () => {
    const plugin = (app: TestServer['app']) => {
      app.get('/v1/streams/probe', async () => ({ ok: true }));
    };
    const s = await startServer(env, serveConfig({ defaultModel: `${name}@production`, apiToken: TOKEN }), [plugin]);
    try {
      const call = (url: string, headers: Record<string, string> = {}, payload?: unknown) =>
        s.app.inject({ method: payload ? 'POST' : 'GET', url, headers, payload: payload as object });
      for (const url of ['/healthz', '/readyz', '/metrics', '/v2/health/live', '/v2/health/ready']) expect((await call(url)).statusCode).toBe(200);
      for (const [url, payload] of [['/predict', RIDE], [`/v2/models/${name}`], ['/openapi.json'], ['/v1/streams/probe'], ['/nowhere']] as const) {
        const res = await call(url, {}, payload);
        expect(res.statusCode).toBe(401);
        expect(res.headers['www-authenticate']).toBe('Bearer');
        expect((await call(url, { authorization: `Bearer ${TOKEN}x` }, payload)).statusCode).toBe(401);
        expect((await call(url, { authorization: `Basic ${TOKEN}` }, payload)).statusCode).toBe(401);
      }
      const ok = await call('/predict', { authorization: `Bearer ${TOKEN}` }, RIDE);
      expect(ok.statusCode).toBe(200);
      expect((await call('/v1/streams/probe', { authorization: `Bearer ${TOKEN}` })).json()).toEqual({ ok: true });
    } finally {
      await s.close();
    }
  });
});

describe('prediction log', () => {
  it('writes each online prediction with its request id, model, version and features', async () => {
    const s = await startServer(env, serveConfig({ defaultModel: `${name}@production`, predictionLog: true }));
    const requestId = freshName('req');
    try {
      const one = await s.app.inject({ method: 'POST', url: '/predict', payload: { ...RIDE, note: 'ignored' }, headers: { 'x-request-id': requestId } });
      expect(one.statusCode).toBe(200);
      const many = await s.app.inject({ method: 'POST', url: `/v1/models/${name}/predict`, payload: RIDES.slice(0, 2), headers: { 'x-request-id': `${requestId}-b` } });
      expect(many.statusCode).toBe(200);
      await s.close();
      const { rows } = await env.pool.query(
        'SELECT request_id, record_index, model_name, model_version, features, prediction FROM prediction_log WHERE request_id LIKE $1 ORDER BY request_id, record_index',
        [`${requestId}%`],
      );
      expect(rows).toEqual([
        { request_id: requestId, record_index: 0, model_name: name, model_version: 1, features: RIDE, prediction: one.json().duration },
        ...RIDES.slice(0, 2).map((r, i) => ({
          request_id: `${requestId}-b`,
          record_index: i,
          model_name: name,
          model_version: 1,
          features: r,
          prediction: many.json().predictions[i],
        })),
      ]);
    } finally {
      await s.close();
    }
  });
});

describe('shutdown', () => {
  it('close() lets in-flight requests finish', async () => {
    const s = await startServer(env, serveConfig({ defaultModel: `${name}@production` }));
    await s.app.listen({ port: 0, host: '127.0.0.1' });
    const address = s.app.server.address() as { port: number };
    const requests = Array.from({ length: 40 }, () =>
      fetch(`http://127.0.0.1:${address.port}/v1/models/${name}/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(Array(50).fill(RIDE)),
      }),
    );
    // Close once every request has its connection, so none is refused for arriving late.
    await waitFor(() => new Promise((resolve) => s.app.server.getConnections((_err, n) => resolve(n === requests.length))), 'all connections');
    const closing = s.close();
    const statuses = await Promise.all(requests.map(async (r) => (await r).status));
    await closing;
    expect(statuses.every((st) => st === 200 || st === 503)).toBe(true);
    expect(statuses.filter((st) => st === 200).length).toBeGreaterThan(0);
  });
});

describe('clients that go away', () => {
  it('stop the scoring of their large requests between slices (both /v1 and v2); the service goes on answering', async () => {
    // A model of its own, so its counter moves only with this test's requests.
    const solo = (await registerExample(env, 'trip-duration')).name;
    const s = await startServer(env, serveConfig({ defaultModel: `${solo}@production`, maxRecords: 10_000 }));
    await s.app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(s.app.server.address() as { port: number }).port}`;
    /** onnxruntime calls made for the model so far (a 10,000-record request takes 40 slices), read in-process. */
    const calls = async () =>
      (await inferenceDuration.get()).values
        .filter((v) => v.metricName === 'mldeploy_inference_duration_seconds_count' && v.labels.model === solo && v.labels.lane === 'web')
        .reduce((n, v) => n + v.value, 0);
    const rides = Array.from({ length: 10_000 }, (_, i) => RIDES[i % RIDES.length]);
    const requests = [
      { url: `/v1/models/${solo}/predict`, body: JSON.stringify(rides) },
      {
        url: `/v2/models/${solo}/infer`,
        body: JSON.stringify({
          inputs: [
            { name: 'PU_DO', shape: [rides.length, 1], datatype: 'BYTES', data: rides.map((r) => `${r.PULocationID}_${r.DOLocationID}`) },
            { name: 'trip_distance', shape: [rides.length, 1], datatype: 'FP32', data: rides.map((r) => r.trip_distance) },
          ],
        }),
      },
    ];
    const CONCURRENT = 20;
    const SLICES_EACH = Math.ceil(10_000 / 256);
    try {
      for (const { url, body } of requests) {
        const before = await calls();
        const abort = new AbortController();
        // Twenty at once: their slices take turns, so scoring them all takes a second or more.
        const pending = Array.from({ length: CONCURRENT }, () =>
          fetch(`${base}${url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: abort.signal }),
        );
        for (const p of pending) p.catch(() => {});
        while ((await calls()) === before) await new Promise((resolve) => setImmediate(resolve));
        abort.abort();
        const atAbort = await calls();
        // The abort came early: most of the work was still to do.
        expect(atAbort - before).toBeLessThan((CONCURRENT * SLICES_EACH) / 2);
        expect((await Promise.allSettled(pending)).every((r) => r.status === 'rejected')).toBe(true);
        // Give unstopped requests every chance to run to their end.
        await new Promise((resolve) => setTimeout(resolve, 3000));
        // A request sees its client gone within a slice or two; left alone, the work remaining
        // at the abort would all have been done.
        const afterAbort = (await calls()) - atAbort;
        expect(afterAbort, `${url}: ${afterAbort} calls after the abort, ${CONCURRENT * SLICES_EACH - (atAbort - before)} were left`).toBeLessThanOrEqual(2 * CONCURRENT);
        const again = await fetch(`${base}/v1/models/${solo}/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(RIDES) });
        expect(again.status).toBe(200);
      }
    } finally {
      await s.close();
    }
  });
});
