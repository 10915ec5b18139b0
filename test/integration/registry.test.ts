// The model registry against a real PostgreSQL: registration, validation, references and
// parity with the values scikit-learn and onnx computed when the fixtures were made.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerModel, RegistrationError } from '../../src/registry/register.ts';
import { ModelCache } from '../../src/registry/runtime.ts';
import { FIXTURES, openTestEnv, registerExample, uniqueName, type TestEnv } from '../helpers.ts';

let env: TestEnv;
let cache: ModelCache;
beforeAll(async () => {
  env = await openTestEnv();
  cache = new ModelCache(env.store, 1);
});
afterAll(async () => {
  await cache.release();
  await env.close();
});

const fixture = (file: string) => fs.readFileSync(path.join(FIXTURES, file));
const json = (file: string) => JSON.parse(fixture(file).toString('utf8'));
const versionsOf = async (name: string) => (await env.pool.query('SELECT count(*)::int AS n FROM model_versions WHERE name = $1', [name])).rows[0].n;

async function expectRejected(name: string, bytes: Buffer, spec: unknown, message: RegExp) {
  await expect(registerModel(env.store, { name, bytes, spec, maxBytes: 1 << 26 })).rejects.toThrow(message);
  await expect(registerModel(env.store, { name, bytes, spec, maxBytes: 1 << 26 })).rejects.toBeInstanceOf(RegistrationError);
  expect(await versionsOf(name)).toBe(0);
}

describe('registering models', () => {
  it('a scikit-learn pipeline (string and float columns) predicts what scikit-learn predicted', async () => {
    const name = uniqueName('sk');
    const version = await registerModel(env.store, { name, bytes: fixture('sk_pipeline.onnx'), maxBytes: 1 << 26 });
    expect(version.version).toBe(1);
    expect(version.metadata.inputs.map((i) => i.name).sort()).toEqual(['city', 'x1', 'x2']);
    const expected = json('sk_pipeline.expected.json');
    const model = await cache.resolve(name);
    const { predictions, errors } = await model.predict(expected.records);
    expect(errors).toEqual([]);
    predictions.forEach((p, i) => expect(Math.abs(p! - expected.predictions[i])).toBeLessThan(1e-4));
  });

  it.each([
    ['plain ONNX graph with a [N,3] matrix input', 'plain_linear', true],
    ['int64, float64, bool and string inputs', 'dtypes', false],
    ['a classifier exported with zipmap=False (probability column)', 'classifier_nozipmap', true],
  ])('%s', async (_title, base, hasSpec) => {
    const name = uniqueName(base);
    const spec = hasSpec ? json(`${base}.spec.json`) : undefined;
    await registerModel(env.store, { name, bytes: fixture(`${base}.onnx`), spec, maxBytes: 1 << 26 });
    const expected = json(`${base}.expected.json`);
    const { predictions, errors } = await (await cache.resolve(name)).predict(expected.records);
    expect(errors).toEqual([]);
    predictions.forEach((p, i) => expect(Math.abs(p! - expected.predictions[i])).toBeLessThan(1e-5));
  });

  it('turns a non-finite model output into an error for that record only', async () => {
    const name = uniqueName('plain_linear');
    await registerModel(env.store, { name, bytes: fixture('plain_linear.onnx'), spec: json('plain_linear.spec.json'), maxBytes: 1 << 26 });
    const huge = 3.4e38; // float32 overflows to ±Infinity in the matrix product
    const { predictions, errors } = await (
      await cache.resolve(name)
    ).predict([
      { a: 1, b: 2, c: 3 },
      { a: huge, b: huge, c: huge },
    ]);
    expect(Number.isFinite(predictions[0])).toBe(true);
    expect(predictions[1]).toBeNull();
    expect(errors).toEqual([{ index: 1, field: 'y', reason: expect.stringMatching(/^the model's output y is -?Infinity for this record$/) }]);
  });

  it('rejects a corrupt file, and stores nothing', async () => {
    await expectRejected(uniqueName('corrupt'), fixture('corrupt.onnx'), undefined, /cannot load the file as an ONNX model/);
  });

  it('rejects a ZipMap classifier with how to re-export it', async () => {
    await expectRejected(uniqueName('zipmap'), fixture('zipmap_classifier.onnx'), undefined, /zipmap': False/);
  });

  it('rejects a DictVectorizer pipeline with how to re-export it', async () => {
    await expectRejected(uniqueName('dv'), fixture('dictvectorizer.onnx'), undefined, /OneHotEncoder/);
  });

  it('rejects a spec that misses a model input', async () => {
    const spec = {
      inputs: [
        { name: 'city', dtype: 'string', fields: ['city'] },
        { name: 'x1', dtype: 'float32', fields: ['x1'] },
      ],
    };
    await expectRejected(uniqueName('sk'), fixture('sk_pipeline.onnx'), spec, /does not feed model input 'x2'/);
  });

  it('rejects a spec whose example record fails', async () => {
    const spec = { ...json('plain_linear.spec.json'), example: { a: 1, b: 'two', c: 3 } };
    await expectRejected(uniqueName('pl'), fixture('plain_linear.onnx'), spec, /example record is rejected: b must be a finite number/);
  });

  it('rejects a file over the size limit', async () => {
    const name = uniqueName('big');
    await expect(registerModel(env.store, { name, bytes: fixture('sk_pipeline.onnx'), maxBytes: 100 })).rejects.toThrow(/limit is 100/);
    expect(await versionsOf(name)).toBe(0);
  });
});

describe('references and aliases', () => {
  it('resolves name, name@alias and name@version; a bare name prefers production', async () => {
    const first = await registerExample(env, 'trip-duration');
    const name = first.name;
    const bytes = fixture('../../../models/trip-duration.onnx');
    const spec = json('../../../models/trip-duration.spec.json');
    const second = await registerModel(env.store, { name, bytes, spec, alias: 'staging', maxBytes: 1 << 26 });
    expect(second.version).toBe(2);
    expect((await env.store.resolve(name)).version).toBe(1);
    expect((await env.store.resolve(`${name}@staging`)).version).toBe(2);
    expect((await env.store.resolve(`${name}@2`)).version).toBe(2);
    await env.store.promote(name, 2, 'production');
    expect((await env.store.resolve(name)).version).toBe(2);
    await expect(env.store.resolve(`${name}@9`)).rejects.toThrow(/does not exist/);
    await expect(env.store.resolve(`${name}@canary`)).rejects.toThrow(/does not exist/);
  });

  it('a bare name without a production alias means the latest version', async () => {
    const v = await registerExample(env, 'fare', 'staging');
    expect((await env.store.resolve(v.name)).version).toBe(1);
  });

  it("scores the course's raw request through derived features", async () => {
    const v = await registerExample(env, 'trip-duration');
    const { predictions } = await (await cache.get(v)).predict([{ PULocationID: 10, DOLocationID: 50, trip_distance: 40 }]);
    expect(predictions[0]).toBeGreaterThan(1);
    expect(predictions[0]).toBeLessThanOrEqual(180);
  });

  it('drops a version nobody used for its idle time; a holder can still score with it, and a later get loads it again', async () => {
    const idleMs = 60_000;
    const idleCache = new ModelCache(env.store, 1, idleMs);
    try {
      const v = await registerExample(env, 'trip-duration');
      const ride = { PULocationID: 10, DOLocationID: 50, trip_distance: 40 };
      const first = await idleCache.get(v);
      const { predictions: before } = await first.predict([ride]);
      expect(idleCache.dropIdle(first.lastUsedAt + idleMs - 1)).toEqual([]);
      expect(await idleCache.get(v)).toBe(first);
      // Scoring counts as use, as a handed-out version does.
      await first.predict([ride]);
      expect(idleCache.dropIdle(first.lastUsedAt + idleMs - 1)).toEqual([]);
      expect(idleCache.dropIdle(first.lastUsedAt + idleMs)).toEqual([`${v.name}@${v.version}`]);
      expect((await first.predict([ride])).predictions).toEqual(before);
      const again = await idleCache.get(v);
      expect(again).not.toBe(first);
      expect((await again.predict([ride])).predictions).toEqual(before);
    } finally {
      await idleCache.release();
    }
  });

  it('refuses to load a version whose bytes no longer match the sha256', async () => {
    const v = await registerExample(env, 'tip');
    await env.pool.query(`UPDATE model_versions SET onnx = onnx || '\\x00'::bytea WHERE name = $1`, [v.name]);
    await expect(new ModelCache(env.store, 1).get(v)).rejects.toThrow(/sha256/);
  });
});
