// docs/models.md's export cookbook: each recipe's fixture (scripts/train/make_cookbook.py)
// registers with the spec the cookbook gives, and mldeploy's predictions on held-out rows match
// the native library's (XGBoost, LightGBM, PyTorch) within 1e-4.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerModel } from '../../src/registry/register.ts';
import { ModelCache } from '../../src/registry/runtime.ts';
import { FIXTURES, openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';

const read = (file: string) => fs.readFileSync(path.join(FIXTURES, file));

let env: TestEnv;
let cache: ModelCache;
beforeAll(async () => {
  env = await openTestEnv();
  cache = new ModelCache(env.store, 1);
});
afterAll(async () => {
  await cache?.release();
  await env?.close();
});

describe('export cookbook', () => {
  it.each(['xgboost', 'lightgbm', 'torch_mlp'])('%s: registers with the cookbook spec and matches the native predictions within 1e-4', async (kind) => {
    const spec = JSON.parse(read(`cookbook_${kind}.spec.json`).toString());
    const expected = JSON.parse(read(`cookbook_${kind}.expected.json`).toString()) as { records: Record<string, number>[]; predictions: number[] };
    const version = await registerModel(env.store, { name: uniqueName(`cookbook-${kind}`), bytes: read(`cookbook_${kind}.onnx`), spec, maxBytes: 1 << 26 });
    const { predictions, errors } = await (await cache.get(version)).predict(expected.records);
    expect(errors).toEqual([]);
    expect(predictions).toHaveLength(expected.predictions.length);
    predictions.forEach((p, i) => expect(Math.abs(p! - expected.predictions[i])).toBeLessThanOrEqual(1e-4));
  });
});
