// Bad-input suite, HTTP part: thousands of malformed requests to a real listening web
// service (prediction routes, Open Inference Protocol v2, POST /v1/events) with valid
// requests interleaved. Every answer is < 500, every 4xx has a clear {"error"}, accepted
// records agree with LoadedModel.predict, valid requests keep their right answers, the
// service stays up, and nothing is written for a rejected request.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readExampleModel } from '../../src/demo.ts';
import { LoadedModel } from '../../src/registry/runtime.ts';
import { parseSpec } from '../../src/registry/spec.ts';
import { streamingRoutes } from '../../src/streaming/http.ts';
import { badRecord, contentType, jsonishText, nastyString, nastyValue, rawBytes } from '../bad-input/arbitraries.ts';
import { clearError, closeClient, send, type Answer } from '../bad-input/http-client.ts';
import { runs, Tally } from '../bad-input/runs.ts';
import { openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { RIDES, serveConfig, startServer, waitFor, type TestServer } from './serve-support.ts';
import { openStreamRig, registerRideModels, rideRoute, type StreamTestRig } from './stream-env.ts';

const tally = new Tally();
const tag = uniqueName('bad').toLowerCase();
const UNKNOWN_TYPE = `unknown_${tag.replace(/[^a-z0-9]/g, '_')}`;

let env: TestEnv;
let rig: StreamTestRig;
let server: TestServer;
let base: string;
let modelName: string;
let oracle: LoadedModel;
let requestCounter = 0;
/** Request id → records a 200 answer scored, to compare with prediction_log afterwards. */
const scored = new Map<string, number>();
const rejectedIds: string[] = [];

beforeAll(async () => {
  env = await openTestEnv();
  const models = await registerRideModels(env);
  modelName = models.duration.split('@')[0];
  rig = await openStreamRig(env, (t) => ({ ride_started: rideRoute(models, t), ride_batched: { ...rideRoute(models, t), mode: 'batched', partitions: 2 } }));
  const config = serveConfig({ defaultModel: models.duration, predictionLog: true, maxRecords: 1_000 });
  const deps = { ingress: rig.ingress({ waitMs: 60_000 }), backend: rig.backend };
  server = await startServer(env, config, [(app) => streamingRoutes(app, deps)]);
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const address = server.app.server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const { bytes, spec } = readExampleModel('trip-duration');
  oracle = await LoadedModel.fromBytes('oracle', 1, bytes, parseSpec(spec), 1);
});

afterAll(async () => {
  tally.print('HTTP');
  closeClient();
  await server?.close();
  await oracle?.session.release();
  await rig?.close();
  await env?.close();
});

const POISONED = /"__proto__"|"constructor"\s*:\s*\{/;

/** Percent-encodes the UTF-8 bytes of a path segment (lone surrogates become U+FFFD, as a client would send). */
const segment = (text: string) =>
  [...Buffer.from(text, 'utf8')]
    .map((b) => (/[A-Za-z0-9._~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0').toUpperCase()}`))
    .join('');

const nextRequestId = () => `${tag}-${++requestCounter}`;
/** v2 infer requests: logged per row when accepted, rows whose output is not finite left out, so only their rejections are checked against the log. */
const nextV2RequestId = () => `${tag}-v2-${++requestCounter}`;

function post(url: string, body: Buffer | string | undefined, type: string | null = 'application/json', requestId = nextRequestId()): Promise<Answer & { requestId: string }> {
  const headers: Record<string, string> = { 'x-request-id': requestId };
  if (type !== null) headers['content-type'] = type;
  return send(base, 'POST', url, body, headers).then((a) => ({ ...a, requestId }));
}

/** No 5xx; a 4xx carries a clear error; returns the parsed body of a 2xx. */
function checkAnswer(answer: Answer & { requestId: string }, what: string): unknown {
  expect(answer.status, `${what}: ${answer.text.slice(0, 300)}`).toBeLessThan(500);
  if (answer.status >= 400) {
    expect(clearError(answer), `${what} → ${answer.status} without a clear error: ${answer.text.slice(0, 300)}`).toBeDefined();
    rejectedIds.push(answer.requestId);
    return undefined;
  }
  return JSON.parse(answer.text);
}

/** What the server must answer for a /predict body that parsed as `value`. */
async function expectPredictAgrees(value: unknown, answer: Answer & { requestId: string }, text: string) {
  const body = checkAnswer(answer, `/predict ${text.slice(0, 200)}`);
  // secure-json-parse refuses prototype-poisoning keys with a 400 before any route runs.
  if (POISONED.test(text) && answer.status === 400) return;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    expect(answer.status).toBe(400);
    return;
  }
  const { predictions, errors } = await oracle.predict([value as Record<string, unknown>]);
  if (errors.length > 0) {
    expect(answer.status, text.slice(0, 200)).toBe(400);
    expect(clearError(answer)).toBe(errors[0].reason);
    return;
  }
  expect(answer.status, `${text.slice(0, 200)} → ${answer.text.slice(0, 200)}`).toBe(200);
  const { duration } = body as { duration: number };
  expect(duration).toBeCloseTo(predictions[0]!, 4);
  scored.set(answer.requestId, 1);
}

/** A valid ride sent next to a bad request: it must get its right answer. */
async function validPredict(i: number) {
  const ride = RIDES[i % RIDES.length];
  const expected = (await oracle.predict([ride])).predictions[0]!;
  const answer = i % 2 === 0 ? await post('/predict', JSON.stringify(ride)) : await post(`/v1/models/${segment(`${modelName}@production`)}/predict`, JSON.stringify([ride, ride]));
  expect(answer.status, answer.text).toBe(200);
  const body = JSON.parse(answer.text);
  if (i % 2 === 0) expect(body.duration).toBeCloseTo(expected, 4);
  else expect(body.predictions).toEqual([expect.closeTo(expected, 4), expect.closeTo(expected, 4)]);
  scored.set(answer.requestId, i % 2 === 0 ? 1 : 2);
  tally.add('valid requests interleaved (predict)');
}

describe('bad input over HTTP', () => {
  it('POST /predict: malformed JSON values (wrong types, missing fields, huge strings, extra keys)', async () => {
    let i = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 4, arbitrary: badRecord }, { weight: 1, arbitrary: nastyValue }), async (value) => {
        tally.add('/predict: JSON values');
        const text = JSON.stringify(value) ?? 'null';
        const bad = post('/predict', text);
        const [answer] = await Promise.all([bad, ++i % 10 === 0 ? validPredict(i) : undefined]);
        await expectPredictAgrees(JSON.parse(text), answer, text);
      }),
      runs(1_500),
    );
  });

  it('POST /predict: raw JSON text (1e400, -0, NaN, truncated, deep nesting) and invalid UTF-8 under any content type', async () => {
    let i = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          jsonishText.map((t) => Buffer.from(t)),
          rawBytes,
        ),
        contentType,
        async (bytes, type) => {
          tally.add('/predict: raw text, bytes and content types');
          const [answer] = await Promise.all([post('/predict', bytes, type), ++i % 10 === 0 ? validPredict(i) : undefined]);
          const text = bytes.toString('utf8');
          const isJson = type !== null && /^application\/json(;\s*charset=utf-8)?$/i.test(type);
          let value: unknown;
          try {
            value = JSON.parse(text);
          } catch {
            checkAnswer(answer, `/predict raw ${text.slice(0, 100)}`);
            expect(answer.status).toBeGreaterThanOrEqual(400);
            return;
          }
          if (isJson && text.trim() !== '') await expectPredictAgrees(value, answer, text);
          else if (checkAnswer(answer, `/predict ${type} ${text.slice(0, 100)}`) !== undefined) scored.set(answer.requestId, 1);
        },
      ),
      runs(1_000),
    );
  });

  it('POST /v1/models/{ref}/predict: unknown and malformed references, records and batches', async () => {
    const refs = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(`${'@'}valid`, `${'@'}valid@production`, `${'@'}valid@1`) },
      { weight: 2, arbitrary: nastyString.filter((s) => s.length < 2_000) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          `nope-${tag}`,
          `nope-${tag}@production`,
          `@valid@999`,
          '@valid@0',
          '@valid@99999999999999999999',
          '@valid@@x',
          '@valid@prod uction',
          'x'.repeat(201),
        ),
      },
    );
    const bodies = fc.oneof(
      { weight: 2, arbitrary: badRecord },
      { weight: 2, arbitrary: fc.array(badRecord, { maxLength: 20 }) },
      { weight: 1, arbitrary: nastyValue },
      { weight: 1, arbitrary: fc.array(fc.constant(RIDES[0]), { minLength: 1_001, maxLength: 1_010 }) },
    );
    let i = 0;
    await fc.assert(
      fc.asyncProperty(refs, bodies, async (rawRef, value) => {
        tally.add('/v1/models/{ref}/predict: refs × bodies');
        const ref = rawRef.replace('@valid', modelName);
        const text = JSON.stringify(value) ?? 'null';
        const [answer] = await Promise.all([post(`/v1/models/${segment(ref)}/predict`, text), ++i % 10 === 0 ? validPredict(i) : undefined]);
        const body = checkAnswer(answer, `v1 ${ref.slice(0, 80)} ${text.slice(0, 200)}`) as { predictions: number[]; version: number } | undefined;
        const knownRef = [modelName, `${modelName}@production`, `${modelName}@1`].includes(ref);
        const parsed = JSON.parse(text);
        if (!knownRef || parsed === null || typeof parsed !== 'object' || (POISONED.test(text) && answer.status === 400)) {
          if (!knownRef || (!Array.isArray(parsed) && (parsed === null || typeof parsed !== 'object'))) expect(answer.status).toBeGreaterThanOrEqual(400);
          return;
        }
        const records: unknown[] = Array.isArray(parsed) ? parsed : [parsed];
        if (records.length > 1_000 || records.some((r) => r === null || typeof r !== 'object' || Array.isArray(r))) {
          expect(answer.status).toBe(400);
          return;
        }
        const { predictions, errors } = await oracle.predict(records as Record<string, unknown>[]);
        if (errors.length > 0) {
          expect(answer.status).toBe(400);
          expect(clearError(answer)).toContain(errors[0].reason);
          return;
        }
        expect(answer.status, answer.text.slice(0, 300)).toBe(200);
        expect(body!.predictions).toHaveLength(predictions.length);
        body!.predictions.forEach((p, k) => expect(p).toBeCloseTo(predictions[k]!, 4));
        if (predictions.length > 0) scored.set(answer.requestId, predictions.length);
      }),
      runs(1_500),
    );
  });

  it('POST /v2/models/{name}/infer: mutated tensors (types, shapes, data, names) and unknown models', async () => {
    const validTensors = (ride: (typeof RIDES)[number]) => [
      { name: 'PU_DO', shape: [1, 1], datatype: 'BYTES', data: [`${ride.PULocationID}_${ride.DOLocationID}`] },
      { name: 'trip_distance', shape: [1, 1], datatype: 'FP32', data: [ride.trip_distance] },
    ];
    const tensor = fc.record(
      {
        name: fc.oneof(fc.constantFrom('PU_DO', 'trip_distance'), nastyValue),
        shape: fc.oneof(fc.constant([1, 1]), fc.array(fc.oneof(fc.integer({ min: -2, max: 3 }), fc.constantFrom(1e9, 2 ** 53, 1e300, 0.5)), { maxLength: 9 }), nastyValue),
        datatype: fc.oneof(fc.constantFrom('BYTES', 'FP32', 'FP64', 'INT64', 'BOOL', 'FP16', 'UINT8'), nastyValue),
        data: fc.oneof(
          fc.array(nastyValue, { maxLength: 4 }),
          fc.constant(['10_50']),
          fc.constant([[4]]),
          nastyValue,
          fc.integer({ min: 0, max: 40 }).map((n) => [JSON.parse('['.repeat(n) + '1' + ']'.repeat(n))]),
        ),
        parameters: nastyValue,
      },
      { requiredKeys: [] },
    );
    const bodies = fc.oneof(
      fc.tuple(fc.nat(RIDES.length - 1), fc.nat(1), tensor).map(([r, k, t]) => ({ inputs: validTensors(RIDES[r]).map((v, j) => (j === k ? { ...v, ...t } : v)) })),
      fc.record(
        {
          id: nastyValue,
          inputs: fc.oneof(fc.array(tensor, { maxLength: 3 }), nastyValue),
          outputs: fc.oneof(fc.array(fc.record({ name: nastyValue }), { maxLength: 2 }), nastyValue),
        },
        { requiredKeys: [] },
      ),
      nastyValue,
    );
    const names = fc.oneof(
      { weight: 3, arbitrary: fc.constant('@valid') },
      { weight: 1, arbitrary: nastyString.filter((s) => s.length > 0 && s.length < 1_000) },
      { weight: 1, arbitrary: fc.constant(`nope-${tag}`) },
    );
    let i = 0;
    await fc.assert(
      fc.asyncProperty(names, bodies, async (rawName, value) => {
        tally.add('/v2/models/{name}/infer: names × tensors');
        const name = rawName === '@valid' ? modelName : rawName;
        const text = JSON.stringify(value) ?? 'null';
        const valid = ++i % 10 === 0 ? RIDES[i % RIDES.length] : undefined;
        const [answer, good] = await Promise.all([
          post(`/v2/models/${segment(name)}/infer`, text, 'application/json', nextV2RequestId()),
          valid ? post(`/v2/models/${segment(modelName)}/infer`, JSON.stringify({ inputs: validTensors(valid) }), 'application/json', nextV2RequestId()) : undefined,
        ]);
        const body = checkAnswer(answer, `v2 ${name.slice(0, 80)} ${text.slice(0, 300)}`) as { model_name: string; outputs: unknown[] } | undefined;
        if (body) {
          expect(body.model_name).toBe(modelName);
          expect(Array.isArray(body.outputs)).toBe(true);
        }
        if (valid && good) {
          expect(good.status, good.text).toBe(200);
          const expected = (await oracle.predict([valid])).predictions[0]!;
          expect(JSON.parse(good.text).outputs[0].data[0]).toBeCloseTo(expected, 4);
          tally.add('valid requests interleaved (v2)');
        }
      }),
      runs(1_500),
    );
  });

  it('POST /v2/models/{name}/infer, binary tensor extension: header lengths, binary_data_size, truncated and extended bodies, raw bytes', async () => {
    const bytesOf = (s: string) => Buffer.concat([Buffer.from(Uint32Array.of(Buffer.byteLength(s)).buffer), Buffer.from(s)]);
    const binaryRide = (ride: (typeof RIDES)[number]) => {
      const parts = [bytesOf(`${ride.PULocationID}_${ride.DOLocationID}`), Buffer.from(Float32Array.of(ride.trip_distance).buffer)];
      const header = {
        inputs: [
          { name: 'PU_DO', shape: [1, 1], datatype: 'BYTES', parameters: { binary_data_size: parts[0].length } as Record<string, unknown> },
          { name: 'trip_distance', shape: [1, 1], datatype: 'FP32', parameters: { binary_data_size: parts[1].length } as Record<string, unknown> },
        ] as Array<Record<string, unknown>>,
        parameters: { binary_data_output: true } as unknown,
      };
      return { header, parts };
    };
    const mutation = fc.record(
      {
        headerLength: fc.oneof(fc.integer({ min: -8, max: 8 }), fc.constantFrom('', 'x', '-1', '1e3', ' 5', '99999999999999', '0x10'), nastyValue),
        size: fc.tuple(fc.nat(1), fc.oneof(fc.integer({ min: -3, max: 40 }), fc.constantFrom(2 ** 40, 1.5, '4', null))),
        shape: fc.tuple(fc.nat(1), fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 })),
        data: fc.tuple(fc.nat(1), fc.array(nastyValue, { maxLength: 2 })),
        cut: fc.integer({ min: 1, max: 12 }),
        extra: rawBytes,
        scramble: fc.tuple(fc.nat(40), fc.uint8Array({ minLength: 1, maxLength: 8 })),
        outputs: fc.oneof(
          fc.array(fc.record({ name: fc.constantFrom('variable', 'nope'), parameters: fc.oneof(fc.record({ binary_data: fc.boolean() }), nastyValue) }), { maxLength: 2 }),
          nastyValue,
        ),
        binaryOutput: nastyValue,
      },
      { requiredKeys: [] },
    );
    let i = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat(RIDES.length - 1), mutation, async (r, mutated) => {
        tally.add('/v2/models/{name}/infer: binary bodies');
        // Every tenth request is the valid one, unmutated.
        const m: Partial<typeof mutated> = ++i % 10 === 0 ? {} : mutated;
        const ride = RIDES[r];
        const { header, parts } = binaryRide(ride);
        if (m.size) header.inputs[m.size[0]].parameters = { binary_data_size: m.size[1] };
        if (m.shape) header.inputs[m.shape[0]].shape = m.shape[1];
        if (m.data) header.inputs[m.data[0]].data = m.data[1];
        if (m.outputs !== undefined) Object.assign(header, { outputs: m.outputs });
        if (m.binaryOutput !== undefined) header.parameters = { binary_data_output: m.binaryOutput };
        const json = Buffer.from(JSON.stringify(header));
        let body = Buffer.concat([json, ...parts]);
        if (m.cut !== undefined) body = body.subarray(0, Math.max(0, body.length - m.cut));
        if (m.extra !== undefined) body = Buffer.concat([body, m.extra]);
        if (m.scramble !== undefined && body.length > 0) body.set(m.scramble[1].subarray(0, Math.max(0, body.length - (m.scramble[0] % body.length))), m.scramble[0] % body.length);
        const length =
          typeof m.headerLength === 'number' && Number.isInteger(m.headerLength) && Math.abs(m.headerLength) <= 8
            ? String(json.length + m.headerLength)
            : m.headerLength === undefined
              ? String(json.length)
              : // a header value carries printable ASCII only
                (typeof m.headerLength === 'string' ? m.headerLength : (JSON.stringify(m.headerLength) ?? '')).replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
        const requestId = nextV2RequestId();
        const headers: Record<string, string> = { 'x-request-id': requestId, 'inference-header-content-length': length };
        if (i % 3 === 0) headers['content-type'] = 'application/octet-stream';
        const answer = { ...(await send(base, 'POST', `/v2/models/${segment(modelName)}/infer`, body, headers)), requestId };
        expect(answer.status, `${length} ${body.toString('utf8').slice(0, 300)}: ${answer.text.slice(0, 300)}`).toBeLessThan(500);
        if (answer.status >= 400) {
          expect(clearError(answer), `binary → ${answer.status} without a clear error: ${answer.text.slice(0, 300)}`).toBeDefined();
          rejectedIds.push(requestId);
        }
        if (Object.keys(m).length === 0) {
          expect(answer.status, answer.text).toBe(200);
          const answerHeader = JSON.parse(answer.text.slice(0, Number(answer.text.indexOf('}]}') + 3)));
          expect(answerHeader.outputs[0]).toMatchObject({ name: 'variable', datatype: 'FP32', parameters: { binary_data_size: 4 } });
          tally.add('valid binary requests');
        }
      }),
      runs(1_000),
    );
  });

  it('POST /v1/events: malformed events, unknown event types, bad wait flags; valid events still decided', async () => {
    const invalidId = nastyValue.filter((v) => !(typeof v === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(v)) && !(typeof v === 'number' && Number.isInteger(v) && v >= 0));
    const invalidType = nastyValue.filter((v) => !(typeof v === 'string' && /^[a-z][a-z0-9_-]{0,62}$/.test(v)));
    // JSON.stringify drops undefined: an optional field is absent three times out of four.
    const sometimes = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
    const event = fc.record({
      id: fc.oneof(fc.constant('@id'), fc.constant(undefined), invalidId),
      type: fc.oneof(fc.constantFrom('ride_started', 'ride_batched', UNKNOWN_TYPE), invalidType),
      payload: fc.oneof(
        fc.record({ ride: badRecord }),
        fc.dictionary(
          nastyString.filter((s) => s.length < 100),
          nastyValue,
          { maxKeys: 3 },
        ),
        nastyValue,
      ),
      time: fc.oneof(fc.constant(undefined), fc.constant('2024-01-01T10:00:00Z'), fc.constantFrom('2024-13-45T99:00:00Z', 'yesterday'), nastyValue),
      callbackUrl: sometimes(
        fc.oneof(
          fc.constantFrom('ftp://x', 'javascript:alert(1)', 'not a url'),
          nastyValue.filter((v) => !(typeof v === 'string' && /^https?:/i.test(v))),
        ),
      ),
      extra: sometimes(nastyValue),
    });
    const bodies = fc.oneof(
      { weight: 6, arbitrary: event.map((e) => JSON.stringify(e)) },
      { weight: 1, arbitrary: nastyValue.map((v) => JSON.stringify(v) ?? 'null') },
      { weight: 1, arbitrary: jsonishText },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 30_000 }).map((n) => `{"type":"ride_started","payload":{"ride":${'['.repeat(n)}${']'.repeat(n)}}}`) },
    );
    const accepted = new Set<string>();
    /** Batched-mode events accepted: appended to the inbound log, not workflow starts. */
    const batchedAccepted = new Set<string>();
    const unknownAccepted = new Set<string>();
    const taggedRejected: string[] = [];
    const decisions: Array<Promise<void>> = [];
    let i = 0;
    await fc.assert(
      fc.asyncProperty(
        bodies,
        fc.oneof({ weight: 1, arbitrary: rawBytes.map((b) => ({ bytes: b })) }, { weight: 3, arbitrary: fc.constant(undefined) }),
        fc.constantFrom('', '?wait=maybe', '?wait=', '?wait=false', '?wait[]=1'),
        contentType,
        async (text, raw, query, type) => {
          tally.add('/v1/events: events, raw bytes, flags, content types');
          const id = `${tag}-ev-${++i}`;
          const payload = raw ? raw.bytes : Buffer.from(text.replace('"@id"', JSON.stringify(id)));
          const answer = await post(`/v1/events${query}`, payload, raw || i % 3 === 0 ? type : 'application/json');
          const body = checkAnswer(answer, `events ${query} ${type} ${payload.toString('utf8').slice(0, 200)}`) as
            { workflowId: string; type: string; eventId: string } | undefined;
          if (body) {
            expect([200, 202]).toContain(answer.status);
            if (body.type === 'ride_batched') batchedAccepted.add(body.eventId);
            else accepted.add(body.workflowId);
            if (body.type === UNKNOWN_TYPE) unknownAccepted.add(body.eventId);
          } else if (payload.includes(id)) taggedRejected.push(id);
          if (i % 100 === 0) {
            const ride = RIDES[i % RIDES.length];
            const validId = `${tag}-valid-${i}`;
            decisions.push(
              (async () => {
                const res = await post('/v1/events?wait=true', JSON.stringify({ id: validId, type: 'ride_started', payload: { ride } }));
                expect(res.status, res.text).toBe(200);
                const result = JSON.parse(res.text);
                accepted.add(result.workflowId);
                expect(result.decision.predictions.duration).toBeCloseTo((await oracle.predict([ride])).predictions[0]!, 4);
                tally.add('valid events interleaved (decided)');
              })(),
            );
          }
        },
      ),
      runs(1_500),
    );
    await Promise.all(decisions);
    tally.add('events accepted (2xx, storm and valid)', accepted.size);

    // Exactly the accepted events started workflows; no rejected event left a dead letter,
    // and every unknown-type event that was accepted is dead-lettered with a reason.
    const query = `TaskQueue = "${rig.taskQueue}" AND WorkflowType = "eventFanout"`;
    await waitFor(async () => (await env.client.workflow.count(query)).count === accepted.size, `${accepted.size} event workflows to be visible`, 30_000);
    expect((await env.client.workflow.count(query)).count).toBe(accepted.size);
    const { rows: stray } = await env.pool.query('SELECT count(*)::int AS n FROM dead_letters WHERE event_id = ANY($1)', [taggedRejected]);
    expect(stray[0].n).toBe(0);
    const unknown = async () => (await env.pool.query('SELECT event_id, reason FROM dead_letters WHERE event_type = $1', [UNKNOWN_TYPE])).rows;
    await waitFor(async () => (await unknown()).length === unknownAccepted.size, 'unknown event types to be dead-lettered', 30_000);
    for (const row of await unknown()) expect(row.reason).toMatch(/no route for event type/);

    // Batched mode: exactly the accepted events are in the inbound log, and each gets its decision.
    tally.add('batched events accepted', batchedAccepted.size);
    const { rows: logged } = await env.pool.query('SELECT event_id FROM inbound_events WHERE log = $1', [`${rig.tag}.ride_batched`]);
    expect(new Set(logged.map((r) => r.event_id as string))).toEqual(batchedAccepted);
    const decisionIds = [...batchedAccepted].map((id) => `ride_batched:${id}`);
    await waitFor(async () => (await rig.backend.find('decisions', decisionIds)).size === decisionIds.length, 'every accepted batched event to be decided', 60_000);
  });

  it('the service is still up and answers valid requests; the prediction log has exactly the accepted records', async () => {
    const health = await send(base, 'GET', '/healthz');
    expect(health.status).toBe(200);
    await validPredict(0);
    await validPredict(1);
    await server.close();
    const { rows } = await env.pool.query('SELECT request_id, count(*)::int AS n FROM prediction_log WHERE request_id LIKE $1 GROUP BY request_id', [`${tag}-%`]);
    const isV2 = (id: string) => id.startsWith(`${tag}-v2-`);
    expect(rows.filter((r) => isV2(r.request_id)).length).toBeGreaterThan(0); // accepted v2 infer calls are logged too
    const logged = new Map(rows.filter((r) => !isV2(r.request_id)).map((r) => [r.request_id as string, r.n as number]));
    expect(logged).toEqual(scored);
    const everyLogged = new Set(rows.map((r) => r.request_id as string));
    const leaked = rejectedIds.filter((id) => everyLogged.has(id));
    expect(leaked).toEqual([]);
    tally.add(
      'prediction-log rows checked',
      [...logged.values()].reduce((a, b) => a + b, 0),
    );
  });
});
