// MLflow import's pure parts: URIs, MLmodel files, spec derivation, credentials kept out of
// provenance, follow intervals.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseModelSource } from '../../src/mlflow/uri.ts';
import { exampleRecord, onnxFile, parseMlModel } from '../../src/mlflow/mlmodel.ts';
import { deriveSpec } from '../../src/mlflow/spec.ts';
import { MlflowClient } from '../../src/mlflow/client.ts';
import { parseInterval } from '../../src/cli/models-follow.ts';

const MLMODEL = `
flavors:
  onnx: {data: model.onnx}
  python_function: {loader_module: mlflow.onnx}
run_id: abc123
saved_input_example_info: {artifact_path: input_example.json, type: dataframe, pandas_orient: split}
signature:
  inputs: '[{"type": "float", "name": "a"}, {"type": "float", "name": "b"}]'
  outputs: '[{"name": "y", "type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 1]}}]'
`;

describe('MLflow model URIs', () => {
  it.each([
    ['models:/fraud@champion', { kind: 'alias', name: 'fraud', alias: 'champion' }],
    ['models:/team/fraud/7', { kind: 'version', name: 'team/fraud', version: 7 }],
    ['models:/m-0a1b2c', { kind: 'logged', modelId: 'm-0a1b2c' }],
    ['runs:/0123abcd/model/', { kind: 'run', runId: '0123abcd', artifactPath: 'model' }],
  ])('parses %s', (uri, expected) => expect(parseModelSource(uri)).toEqual(expected));

  it.each([
    ['models:/fraud', /names no version or alias/],
    ['models:/fraud@', /no alias after '@'/],
    ['runs:/abc', /is not runs:\/<run-id>\/<artifact-path>/],
    ['s3://bucket/model', /is not an MLflow model URI/],
  ])('rejects %s', (uri, message) => expect(() => parseModelSource(uri)).toThrow(message));

  it('takes a directory only when it holds an MLmodel file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlmodel-'));
    expect(() => parseModelSource(dir)).toThrow(/has no MLmodel file/);
    fs.writeFileSync(path.join(dir, 'MLmodel'), MLMODEL);
    expect(parseModelSource(dir)).toEqual({ kind: 'local', dir });
    fs.rmSync(dir, { recursive: true });
  });
});

describe('MLmodel files', () => {
  it('reads the flavor, signature and input example', () => {
    const model = parseMlModel(MLMODEL);
    expect(onnxFile(model)).toBe('model.onnx');
    expect(model.runId).toBe('abc123');
    expect(model.signature?.inputs?.map((f) => f.name)).toEqual(['a', 'b']);
    expect(exampleRecord('{"columns": ["a", "b"], "data": [[1.5, 2]]}', model.inputExample!)).toEqual({ a: 1.5, b: 2 });
    expect(exampleRecord('[{"a": 1, "b": 2}]', { file: 'x', type: 'dataframe', orient: 'records' })).toEqual({ a: 1, b: 2 });
  });

  it.each([
    ['sklearn', /sklearn flavor.*skl2onnx.*to_onnx/],
    ['xgboost', /xgboost flavor.*convert_xgboost.*target_opset=15/],
    ['lightgbm', /lightgbm flavor.*convert_lightgbm/],
    ['pytorch', /flavor\(s\) pytorch; mldeploy serves ONNX models/],
  ])('refuses the %s flavor with the export steps', (flavor, message) => {
    expect(() => onnxFile(parseMlModel(`flavors:\n  ${flavor}: {}\n  python_function: {}\n`))).toThrow(message);
  });

  it('rejects a file that is not an MLmodel', () => {
    expect(() => parseMlModel('just text')).toThrow(/lists no flavors/);
    expect(() => parseMlModel('flavors: [')).toThrow(/not valid YAML/);
  });
});

describe('spec derivation', () => {
  const single = { inputs: [{ name: 'x', type: 'float32', shape: ['N', 2] }], outputs: [{ name: 'y', type: 'float32', shape: ['N', 1] }] };
  const signature = parseMlModel(MLMODEL).signature;

  it('feeds a single multi-column input from the signature columns, with the example', () => {
    expect(deriveSpec(single, signature, { a: 1, b: 2 })).toEqual({ inputs: [{ name: 'x', dtype: 'float32', fields: ['a', 'b'] }], example: { a: 1, b: 2 } });
  });

  it('leaves inputs that are named like the columns to the default', () => {
    const perColumn = { inputs: ['a', 'b'].map((name) => ({ name, type: 'float32', shape: ['N', 1] })), outputs: single.outputs };
    expect(deriveSpec(perColumn, signature, undefined)).toEqual({});
  });

  it('uses the input example columns without a signature', () => {
    expect(deriveSpec(single, undefined, { p: 1, q: 2 }).inputs).toEqual([{ name: 'x', dtype: 'float32', fields: ['p', 'q'] }]);
  });
});

describe('tracking URI', () => {
  it('keeps credentials out of the URI it records', () => {
    const client = new MlflowClient({ trackingUri: 'https://alice:secret@mlflow.example.com/', insecureTls: false });
    expect(client.trackingUri).toBe('https://mlflow.example.com');
  });

  it('explains a missing or unusable tracking URI', () => {
    expect(() => new MlflowClient({ insecureTls: false })).toThrow(/MLFLOW_TRACKING_URI is not set/);
    expect(() => new MlflowClient({ trackingUri: 'databricks', insecureTls: false })).toThrow(/not a URL/);
    expect(() => new MlflowClient({ trackingUri: 'file:///tmp/mlruns', insecureTls: false })).toThrow(/uses file:/);
  });
});

describe('follow intervals', () => {
  it.each([
    ['30s', 30_000],
    ['5m', 300_000],
    ['1500ms', 1500],
  ])('parses %s', (text, ms) => expect(parseInterval(text)).toBe(ms));
  it.each(['10', '500ms', 'soon'])('rejects %s', (text) => expect(() => parseInterval(text)).toThrow(/--every must be a duration/));
});
