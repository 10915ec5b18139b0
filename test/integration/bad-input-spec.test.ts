// Bad-input suite, model specs: random and mutated feature specs against real fixture
// models. parseSpec/resolveSpec and the feature mapper either succeed or throw a clear
// SpecError; registerModel either stores a version or throws a clear RegistrationError,
// SpecError or RefError and stores nothing. Never a TypeError.
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readExampleModel } from '../../src/demo.ts';
import { FeatureMapper } from '../../src/registry/features.ts';
import { readMetadata, resolveSpec, type ModelMetadata } from '../../src/registry/metadata.ts';
import { RefError } from '../../src/registry/refs.ts';
import { registerModel, RegistrationError } from '../../src/registry/register.ts';
import { parseSpec, SpecError } from '../../src/registry/spec.ts';
import { key, nastyString, nastyValue } from '../bad-input/arbitraries.ts';
import { runs, Tally } from '../bad-input/runs.ts';
import { FIXTURES, openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';

const tally = new Tally();
const { spec, bytes: MODEL_BYTES } = readExampleModel('trip-duration');
const VALID_SPEC = spec as { inputs: object[]; derived: object[]; output: object; [key: string]: unknown };

/** The valid spec with one part replaced, deleted or extended: most are near misses. */
const mutatedSpec = fc.oneof(
  fc.tuple(fc.constantFrom('derived', 'inputs', 'output', 'example', 'metrics', 'extra'), nastyValue).map(([k, v]) => ({ ...VALID_SPEC, [k]: v })),
  fc
    .tuple(fc.constantFrom(0, 1), fc.constantFrom('name', 'dtype', 'fields'), nastyValue)
    .map(([i, k, v]) => ({ ...VALID_SPEC, inputs: VALID_SPEC.inputs.map((input: object, j: number) => (j === i ? { ...input, [k]: v } : input)) })),
  fc.tuple(fc.constantFrom('name', 'op', 'fields', 'separator', 'field'), nastyValue).map(([k, v]) => ({ ...VALID_SPEC, derived: [{ ...VALID_SPEC.derived[0], [k]: v }] })),
  fc.tuple(fc.constantFrom('name', 'index', 'clip'), nastyValue).map(([k, v]) => ({ ...VALID_SPEC, output: { ...VALID_SPEC.output, [k]: v } })),
  fc.dictionary(key, nastyValue, { maxKeys: 4 }).map((example) => ({ ...VALID_SPEC, example })),
  fc.constantFrom(
    { ...VALID_SPEC, derived: [{ name: 'PU_DO', op: 'concat', fields: ['PU_DO'] }] },
    { ...VALID_SPEC, derived: [{ name: 'PU_DO', op: 'hour', field: 'PULocationID' }] },
    { ...VALID_SPEC, output: { name: 'variable', index: 5 } },
    { ...VALID_SPEC, output: { clip: { min: 10, max: 1 } } },
    { ...VALID_SPEC, inputs: [...VALID_SPEC.inputs, VALID_SPEC.inputs[0]] },
    { ...VALID_SPEC, inputs: [{ name: 'trip_distance', dtype: 'float32', fields: ['trip_distance', 'trip_distance'] }] },
    {
      inputs: [
        { name: 'PU_DO', dtype: 'string', fields: ['PU_DO'] },
        { name: 'trip_distance', dtype: 'float32', fields: ['trip_distance'] },
      ],
    },
  ),
);
const anySpec = fc.oneof({ weight: 4, arbitrary: mutatedSpec }, { weight: 1, arbitrary: nastyValue });

function expectClear(err: unknown, ...types: Array<new (...args: never[]) => Error>) {
  expect(
    types.some((t) => err instanceof t),
    `unexpected ${(err as Error)?.name}: ${(err as Error)?.message}`,
  ).toBe(true);
  expect((err as Error).message.trim().length).toBeGreaterThan(10);
}

let env: TestEnv;
let meta: ModelMetadata;
beforeAll(async () => {
  env = await openTestEnv();
  const session = await ort.InferenceSession.create(MODEL_BYTES);
  meta = readMetadata(session);
  await session.release();
});
afterAll(async () => {
  tally.print('model specs');
  await env?.close();
});

describe('model spec bad input', () => {
  it('parseSpec and resolveSpec against the real model: a clear SpecError or a spec the mapper can use', () => {
    fc.assert(
      fc.property(anySpec, fc.dictionary(key, nastyValue, { maxKeys: 4 }), (raw, record) => {
        tally.add('parseSpec/resolveSpec + mapper');
        try {
          const resolved = resolveSpec(parseSpec(raw), meta);
          const mapped = new FeatureMapper(resolved, meta).map([record, { PULocationID: 10, DOLocationID: 50, trip_distance: 4 }]);
          expect(mapped.accepted.length + mapped.errors.length).toBe(2);
          for (const e of mapped.errors) expect(e.reason).toContain(e.field);
        } catch (err) {
          expectClear(err, SpecError);
        }
      }),
      runs(3_000),
    );
  });

  it('registerModel with a real model: stores a version, or throws a clear error and stores nothing', async () => {
    const names = fc.oneof({ weight: 4, arbitrary: fc.constant('@fresh') }, { weight: 1, arbitrary: nastyString });
    const files = fc.constantFrom('trip-duration', 'corrupt.onnx', 'zipmap_classifier.onnx', 'empty');
    await fc.assert(
      fc.asyncProperty(names, files, anySpec, fc.oneof(fc.constant(undefined), nastyString), async (rawName, file, spec, alias) => {
        tally.add('registerModel (name, file, spec, alias)');
        const name = rawName === '@fresh' ? uniqueName('badspec') : rawName;
        const bytes = file === 'trip-duration' ? MODEL_BYTES : file === 'empty' ? new Uint8Array() : fs.readFileSync(path.join(FIXTURES, file));
        let stored = false;
        try {
          await registerModel(env.store, { name, bytes, spec, alias: alias || undefined, maxBytes: 64 * 1024 * 1024 });
          stored = true;
        } catch (err) {
          expectClear(err, RegistrationError, SpecError, RefError);
        }
        // A nasty name is refused before any query (it may not even be valid text for PostgreSQL).
        if (rawName !== '@fresh' && !stored) return;
        const { rows } = await env.pool.query('SELECT count(*)::int AS n FROM model_versions WHERE name = $1', [name]);
        expect(rows[0].n).toBe(stored ? 1 : 0);
      }),
      runs(500),
    );
  });
});
