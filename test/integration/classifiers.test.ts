// Classifiers exported without ZipMap (a label output and a probabilities output): the
// registry recognises them and stores their class labels, /v1 and `mldeploy predict` answer
// each record's label and class probabilities, and a stream policy rule on one class's
// probability decides an event (real Temporal dev server and PostgreSQL).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerModel } from '../../src/registry/register.ts';
import { ModelCache } from '../../src/registry/runtime.ts';
import { emitEvent } from '../../src/streaming/emit.ts';
import type { Decision, PredictionRecord } from '../../src/streaming/types.ts';
import { FIXTURES, openTestEnv, registerExample, uniqueName, type TestEnv } from '../helpers.ts';
import { runCli } from './cli-support.ts';
import { serveConfig, startServer, type TestServer } from './serve-support.ts';
import { openStreamRig, readAll, type StreamTestRig } from './stream-env.ts';

const fixture = (file: string) => fs.readFileSync(path.join(FIXTURES, file));
const json = (file: string) => JSON.parse(fixture(file).toString('utf8'));

/** classifier_nozipmap: classes 0 and 1; its expected file holds P(class 1) and the label. */
const binary = json('classifier_nozipmap.expected.json') as { records: Array<Record<string, number>>; predictions: number[]; labels: number[] };
/** classifier_strings: classes high, low, mid. */
const strings = json('classifier_strings.expected.json') as { records: Array<Record<string, number>>; classes: string[]; labels: string[]; probabilities: number[][] };

let env: TestEnv;
let cache: ModelCache;
let binaryName: string;
let stringsName: string;
beforeAll(async () => {
  env = await openTestEnv();
  cache = new ModelCache(env.store, 1);
  binaryName = uniqueName('clf');
  stringsName = uniqueName('clf-strings');
  // No spec: recognised from the model's outputs, inputs fed from the fields of their names.
  await registerModel(env.store, { name: binaryName, bytes: fixture('classifier_nozipmap.onnx'), alias: 'production', maxBytes: 1 << 26 });
  await registerModel(env.store, { name: stringsName, bytes: fixture('classifier_strings.onnx'), alias: 'production', maxBytes: 1 << 26 });
});
afterAll(async () => {
  await cache?.release();
  await env?.close();
});

function expectProbabilities(got: Record<string, number>, classes: Array<string | number>, expected: number[]) {
  expect(Object.keys(got)).toEqual(classes.map(String));
  classes.forEach((c, k) => expect(Math.abs(got[String(c)] - expected[k])).toBeLessThan(1e-5));
}

describe('registering a classifier', () => {
  it('is recognised without a spec, and its class labels (from the ONNX graph) are stored with the version', async () => {
    const stored = await env.store.resolve(`${binaryName}@production`);
    expect(stored.spec.outputs).toEqual({ label: 'label', probabilities: 'probabilities', classes: [0, 1] });
    expect((await env.store.resolve(`${stringsName}@production`)).spec.outputs).toEqual({ label: 'label', probabilities: 'probabilities', classes: strings.classes });
  });

  it('scores labels and class probabilities that match scikit-learn; predictions hold the label (numeric) or its class position (strings)', async () => {
    const model = await cache.resolve(stringsName);
    const result = await model.predict(strings.records);
    expect(result.errors).toEqual([]);
    expect(result.classes).toEqual(strings.classes);
    expect(result.labels).toEqual(strings.labels);
    expect(result.predictions).toEqual(strings.labels.map((l) => strings.classes.indexOf(l)));
    strings.probabilities.flat().forEach((p, i) => expect(Math.abs(result.probabilities![i] - p)).toBeLessThan(1e-5));

    const numeric = await (await cache.resolve(binaryName)).predict([...binary.records, { x1: 'oops', x2: 1 }]);
    expect(numeric.labels).toEqual([...binary.labels, null]);
    expect(numeric.predictions).toEqual([...binary.labels, null]);
    expect(numeric.errors).toEqual([{ index: binary.records.length, field: 'x1', reason: 'x1 must be a finite number, got "oops"' }]);
    binary.predictions.forEach((p1, i) => expect(Math.abs(numeric.probabilities![i * 2 + 1] - p1)).toBeLessThan(1e-5));
    expect(Number.isNaN(numeric.probabilities![binary.records.length * 2])).toBe(true);
  });

  it('a spec can name the outputs and the class labels; wrong ones are refused with the reason', async () => {
    const name = uniqueName('clf-spec');
    const outputs = { label: 'label', probabilities: 'probabilities', classes: [0, 1] };
    const version = await registerModel(env.store, { name, bytes: fixture('classifier_nozipmap.onnx'), spec: { outputs, example: binary.records[0] }, maxBytes: 1 << 26 });
    expect(version.spec.outputs).toEqual(outputs);
    const refused = async (spec: unknown) => registerModel(env.store, { name: uniqueName('clf-bad'), bytes: fixture('classifier_nozipmap.onnx'), spec, maxBytes: 1 << 26 });
    await expect(refused({ outputs: { classes: [0, 1, 2] } })).rejects.toThrow(/outputs.classes lists 3 class label\(s\), but output 'probabilities' has 2 column\(s\)/);
    await expect(refused({ outputs: { classes: ['no', 'yes'] } })).rejects.toThrow(/outputs.classes: "no" is not a number, as output 'label' \(int64\) holds/);
    await expect(refused({ outputs: { label: 'probabilities', probabilities: 'label' } })).rejects.toThrow(/outputs.label: output 'probabilities' is float32/);
    await expect(refused({ output: { name: 'label' }, outputs: {} })).rejects.toThrow(/names both output .* and outputs/);
    await expect(refused({ outputs: { classes: [1, 1] } })).rejects.toThrow(/outputs.classes: class labels must be distinct/);
  });

  it("a spec naming one output keeps today's single prediction (one class's probability)", async () => {
    const name = uniqueName('clf-proba');
    await registerModel(env.store, { name, bytes: fixture('classifier_nozipmap.onnx'), spec: json('classifier_nozipmap.spec.json'), maxBytes: 1 << 26 });
    const result = await (await cache.resolve(name)).predict(binary.records);
    expect(Object.keys(result)).toEqual(['predictions', 'errors']);
    binary.predictions.forEach((p, i) => expect(Math.abs(result.predictions[i]! - p)).toBeLessThan(1e-5));
  });
});

describe('POST /v1/models/{ref}/predict', () => {
  let server: TestServer;
  let regression: string;
  beforeAll(async () => {
    regression = (await registerExample(env, 'trip-duration')).name;
    server = await startServer(env, serveConfig());
  });
  afterAll(async () => server?.close());
  const post = (ref: string, payload: unknown) => server.app.inject({ method: 'POST', url: `/v1/models/${ref}/predict`, payload: payload as object });

  it('a classifier answers each record with its label and the probability of each class, named by the class labels', async () => {
    const res = await post(`${stringsName}@production`, strings.records);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body).toMatchObject({ model: stringsName, version: 1, labels: strings.labels, classes: strings.classes });
    expect(body.predictions).toEqual(strings.labels.map((l) => strings.classes.indexOf(l)));
    body.probabilities.forEach((p: Record<string, number>, i: number) => expectProbabilities(p, strings.classes, strings.probabilities[i]));

    const one = (await post(binaryName, binary.records[3])).json();
    expect(Object.keys(one)).toEqual(['model', 'version', 'predictions', 'labels', 'probabilities', 'classes']);
    expect(one).toMatchObject({ predictions: [1], labels: [1], classes: [0, 1] });
    expectProbabilities(one.probabilities[0], [0, 1], [1 - binary.predictions[3], binary.predictions[3]]);
  });

  it('a rejected record is a 400 naming the field, as for regression models', async () => {
    const res = await post(binaryName, [binary.records[0], { x1: 1 }]);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(/^record 1: x2 is missing/);
  });

  it("a regression model's response keeps exactly today's shape", async () => {
    const body = (await post(regression, [{ PULocationID: 10, DOLocationID: 50, trip_distance: 4 }])).json();
    expect(Object.keys(body)).toEqual(['model', 'version', 'predictions']);
  });
});

describe('mldeploy predict', () => {
  it('prints labels, class probabilities and classes for a classifier', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-clf-cli-'));
    try {
      const cliEnv = { ...process.env, DATABASE_URL: env.databaseUrl, TEMPORAL_ADDRESS: env.temporalAddress, MLDEPLOY_DATA_DIR: dataDir, MLDEPLOY_LOG_LEVEL: 'warn' };
      const { code, stdout, stderr } = await runCli(['predict', `${stringsName}@production`, '--data', JSON.stringify(strings.records.slice(0, 2))], cliEnv);
      expect(stderr).toBe('');
      expect(code).toBe(0);
      const out = JSON.parse(stdout);
      expect(out).toMatchObject({ model: stringsName, labels: strings.labels.slice(0, 2), classes: strings.classes, errors: [] });
      out.probabilities.forEach((p: Record<string, number>, i: number) => expectProbabilities(p, strings.classes, strings.probabilities[i]));
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a stream policy rule on a class probability', () => {
  let rig: StreamTestRig;
  beforeAll(async () => {
    rig = await openStreamRig(env, (tag) => ({
      payment_made: {
        consumers: [{ name: 'fraud', model: `${binaryName}@production`, taskQueue: `${tag}-consumer-fraud`, features: 'payment', timeoutMs: 10_000, maxAttempts: 3 }],
        decision: { rules: [{ when: { fraud: { 'proba.1': { gt: 0.8 } } }, action: 'review', reason: 'fraud probability above 0.8' }], default: 'accept' },
      },
    }));
  });
  afterAll(async () => rig?.close());

  it('decides each event by the probability of class 1; prediction records and decisions carry the label and probabilities', async () => {
    const batch = uniqueName('pay');
    // Record 3: P(1) = 0.959 → review; record 2: P(1) = 0.466 → accept; record 4: P(1) = 0.987 → review.
    const picks = [3, 2, 4];
    const outcomes = await Promise.all(
      picks.map((r) =>
        emitEvent(env.client, { id: `${batch}-${r}`, type: 'payment_made', payload: { payment: binary.records[r] } }, { taskQueue: rig.taskQueue, wait: true, waitMs: 60_000 }),
      ),
    );
    const decisions = outcomes.map((o) => {
      if (o.status !== 'done') throw new Error(`event ${o.eventId} was not decided`);
      return o.decision as Decision;
    });
    expect(decisions.map((d) => d.action)).toEqual(['review', 'accept', 'review']);
    expect(decisions[0].reasons).toEqual(['fraud probability above 0.8']);
    expect(decisions[1].reasons).toEqual(['no rule matched']);
    picks.forEach((r, i) => {
      expect(decisions[i].labels).toEqual({ fraud: binary.labels[r] });
      expect(Math.abs(decisions[i].probabilities!.fraud['1'] - binary.predictions[r])).toBeLessThan(1e-5);
    });

    const records = (await readAll<PredictionRecord>(rig.backend, 'predictions')).map((r) => r.value).filter((v) => v.eventId.startsWith(batch));
    expect(records).toHaveLength(3);
    for (const record of records) {
      const r = Number(record.eventId.split('-').at(-1));
      expect(record).toMatchObject({ consumer: 'fraud', prediction: binary.labels[r], label: binary.labels[r] });
      expectProbabilities(record.probabilities!, [0, 1], [1 - binary.predictions[r], binary.predictions[r]]);
    }
  });
});
