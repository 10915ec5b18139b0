// Classifier recognition and class labels read from ONNX bytes (src/registry/classifier.ts).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { classLabelsOf, detectClassifier, labelNumber, probabilityMap } from '../../src/registry/classifier.ts';

// Protobuf writers, enough to build a ModelProto with one graph node.
function varint(value: bigint): number[] {
  let v = BigInt.asUintN(64, value);
  const out: number[] = [];
  do {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? byte | 0x80 : byte);
  } while (v > 0n);
  return out;
}
const key = (field: number, wire: number) => varint(BigInt((field << 3) | wire));
const bytesField = (field: number, data: number[]) => [...key(field, 2), ...varint(BigInt(data.length)), ...data];
const text = (s: string) => [...Buffer.from(s, 'utf8')];

function model(op: string, attribute: number[]): Uint8Array {
  const node = [...bytesField(1, text('x')), ...bytesField(2, text('label')), ...bytesField(4, text(op)), ...bytesField(7, text('ai.onnx.ml')), ...bytesField(5, attribute)];
  const initializer = bytesField(5, new Array(300).fill(7)); // a GraphProto field the reader skips
  const graph = [...initializer, ...bytesField(1, node), ...bytesField(2, text('graph'))];
  return Uint8Array.from([...key(1, 0), ...varint(8n), ...bytesField(7, graph)]);
}

describe('class labels from the ONNX graph', () => {
  it('reads packed int64 labels (negative ones too)', () => {
    const packed = [-1n, 0n, 5n].flatMap(varint);
    expect(classLabelsOf(model('TreeEnsembleClassifier', [...bytesField(1, text('classlabels_int64s')), ...bytesField(8, packed)]))).toEqual([-1, 0, 5]);
  });

  it('reads unpacked ints and strings', () => {
    const unpacked = [3n, 4n].flatMap((v) => [...key(8, 0), ...varint(v)]);
    expect(classLabelsOf(model('LinearClassifier', [...bytesField(1, text('classlabels_ints')), ...unpacked]))).toEqual([3, 4]);
    const strings = ['no', 'yes'].flatMap((s) => bytesField(9, text(s)));
    expect(classLabelsOf(model('SVMClassifier', [...bytesField(1, text('classlabels_strings')), ...strings]))).toEqual(['no', 'yes']);
  });

  it('finds none in other nodes, regression models or bytes that are not a model', () => {
    expect(classLabelsOf(model('TreeEnsembleRegressor', [...bytesField(1, text('classlabels_ints')), ...key(8, 0), 1]))).toBeUndefined();
    expect(classLabelsOf(fs.readFileSync(path.resolve('test/fixtures/models/plain_linear.onnx')))).toBeUndefined();
    expect(classLabelsOf(fs.readFileSync(path.resolve('test/fixtures/models/corrupt.onnx')))).toBeUndefined();
    expect(classLabelsOf(Uint8Array.from([0x3a, 0xff]))).toBeUndefined();
  });

  it('reads the fixtures skl2onnx exported', () => {
    expect(classLabelsOf(fs.readFileSync(path.resolve('test/fixtures/models/classifier_nozipmap.onnx')))).toEqual([0, 1]);
    expect(classLabelsOf(fs.readFileSync(path.resolve('test/fixtures/models/classifier_strings.onnx')))).toEqual(['high', 'low', 'mid']);
  });
});

describe('recognising a classifier', () => {
  const t = (name: string, type: string, shape: Array<number | string>) => ({ name, type, shape });
  it('a label tensor and a probabilities tensor, in either order', () => {
    expect(detectClassifier([t('label', 'int64', ['N']), t('probabilities', 'float32', ['N', 2])])).toEqual({ label: 'label', probabilities: 'probabilities' });
    expect(detectClassifier([t('p', 'float32', ['N', 3]), t('l', 'string', ['N', 1])])).toEqual({ label: 'l', probabilities: 'p' });
  });

  it('not a regression output, three outputs, or two float outputs', () => {
    expect(detectClassifier([t('variable', 'float32', ['N', 1])])).toBeUndefined();
    expect(detectClassifier([t('label', 'int64', ['N']), t('p', 'float32', ['N', 2]), t('extra', 'float32', ['N'])])).toBeUndefined();
    expect(detectClassifier([t('a', 'float32', ['N', 1]), t('b', 'float32', ['N', 2])])).toBeUndefined();
  });

  it('predictions hold numeric labels, or the position of a string label; probabilities are keyed by class', () => {
    expect(labelNumber(7, [3, 7])).toBe(7);
    expect(labelNumber('mid', ['high', 'low', 'mid'])).toBe(2);
    expect(probabilityMap(['a', 'b'], Float32Array.from([0.1, 0.9, 0.25, 0.75]), 1)).toEqual({ a: 0.25, b: 0.75 });
  });
});
