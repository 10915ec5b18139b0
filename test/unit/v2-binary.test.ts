// The HTTP binary tensor extension: splitting a body into header and tensor bytes, decoding
// inputs with the JSON path's value rules, encoding outputs, and a precise 400 for every
// malformed body.
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { TensorInfo } from '../../src/registry/metadata.ts';
import { HttpError } from '../../src/serve/errors.ts';
import { binaryOf, encodeBinary, parseBinaryBody } from '../../src/serve/v2-binary.ts';
import { toFeeds, type V2InputTensor } from '../../src/serve/v2-tensors.ts';

const MODEL: TensorInfo[] = [
  { name: 'x', type: 'float32', shape: ['N', 2] },
  { name: 'n', type: 'int64', shape: [-1] },
  { name: 'flag', type: 'bool', shape: ['N'] },
  { name: 's', type: 'string', shape: ['N', 1] },
];

const bytesOf = (strings: string[]) => Buffer.concat(strings.flatMap((s) => [Buffer.from(Uint32Array.of(Buffer.byteLength(s)).buffer), Buffer.from(s)]));

function body(inputs: Array<{ tensor: Omit<V2InputTensor, 'parameters'>; bytes: Buffer }>, extra = Buffer.alloc(0)) {
  const header = { inputs: inputs.map(({ tensor, bytes }) => ({ ...tensor, parameters: { binary_data_size: bytes.length } })) };
  const json = Buffer.from(JSON.stringify(header));
  return { buffer: Buffer.concat([json, ...inputs.map((i) => i.bytes), extra]), length: String(json.length) };
}

const valid = () => [
  { tensor: { name: 'x', shape: [2, 2], datatype: 'FP32' }, bytes: Buffer.from(Float32Array.of(1, 2.5, -3, 4).buffer) },
  { tensor: { name: 'n', shape: [2], datatype: 'INT64' }, bytes: Buffer.from(BigInt64Array.of(7n, -8n).buffer) },
  { tensor: { name: 'flag', shape: [2], datatype: 'BOOL' }, bytes: Buffer.from([1, 0]) },
  { tensor: { name: 's', shape: [2, 1], datatype: 'BYTES' }, bytes: bytesOf(['héllo', '']) },
];

function feedsOf(b: { buffer: Buffer; length: string }) {
  const header = parseBinaryBody(b.buffer, b.length) as { inputs: V2InputTensor[] };
  return toFeeds(header.inputs, MODEL, 100, binaryOf(header));
}

function rejects(run: () => unknown, message: RegExp) {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(HttpError);
    expect((err as HttpError).statusCode).toBe(400);
    expect((err as Error).message).toMatch(message);
    return;
  }
  throw new Error('expected a 400');
}

describe('v2 binary tensors', () => {
  it('decodes FP32, INT64, BOOL and BYTES inputs into the model feeds', () => {
    const { feeds, rows } = feedsOf(body(valid()));
    expect(rows).toBe(2);
    expect(Array.from(feeds.x.data as Float32Array)).toEqual([1, 2.5, -3, 4]);
    expect(Array.from(feeds.n.data as BigInt64Array)).toEqual([7n, -8n]);
    expect(Array.from(feeds.flag.data as Uint8Array)).toEqual([1, 0]);
    expect(feeds.s.data).toEqual(['héllo', '']);
    expect(feeds.x.dims).toEqual([2, 2]);
  });

  it('reads BYTES elements exactly, all-ASCII inputs and mixed ones alike', () => {
    const long = 'k'.repeat(200); // its length prefix (200) is not an ASCII byte
    for (const strings of [
      ['10_50', 'a', ''],
      ['10_50', long, 'ü', '\u{1F600}', 'x'],
    ]) {
      const inputs = [
        { tensor: { name: 'x', shape: [strings.length, 2], datatype: 'FP32' }, bytes: Buffer.from(new Float32Array(strings.length * 2).buffer) },
        { tensor: { name: 'n', shape: [strings.length], datatype: 'INT64' }, bytes: Buffer.from(new BigInt64Array(strings.length).buffer) },
        { tensor: { name: 'flag', shape: [strings.length], datatype: 'BOOL' }, bytes: Buffer.alloc(strings.length) },
        { tensor: { name: 's', shape: [strings.length, 1], datatype: 'BYTES' }, bytes: bytesOf(strings) },
      ];
      expect(feedsOf(body(inputs)).feeds.s.data).toEqual(strings);
    }
  });

  it('mixes binary and JSON inputs in one request', () => {
    const parts = valid();
    const b = body(parts.slice(1));
    const header = parseBinaryBody(b.buffer, b.length) as { inputs: V2InputTensor[] };
    header.inputs.unshift({ name: 'x', shape: [2, 2], datatype: 'FP32', data: [1, 2, 3, 4] });
    expect(Array.from(toFeeds(header.inputs, MODEL, 100, binaryOf(header)).feeds.x.data as Float32Array)).toEqual([1, 2, 3, 4]);
  });

  it('encodes outputs as the extension lays them out (BYTES with a 4-byte length prefix)', () => {
    expect(encodeBinary(new ort.Tensor('float32', Float32Array.of(1.5, -2), [2]))).toEqual(Buffer.from(Float32Array.of(1.5, -2).buffer));
    expect(encodeBinary(new ort.Tensor('int64', BigInt64Array.of(5n), [1]))).toEqual(Buffer.from(BigInt64Array.of(5n).buffer));
    expect(encodeBinary(new ort.Tensor('string', ['ab', 'é'], [2]))).toEqual(bytesOf(['ab', 'é']));
  });

  it('refuses every malformed body with a precise 400', () => {
    const good = body(valid());
    const json = good.buffer.subarray(0, Number(good.length));
    const cases: Array<[string, () => unknown, RegExp]> = [
      ['header length not a number', () => parseBinaryBody(good.buffer, 'ten'), /must be a whole number of bytes, got "ten"/],
      ['header longer than the body', () => parseBinaryBody(good.buffer, String(good.buffer.length + 1)), /longer than the body/],
      ['header cut inside the JSON', () => parseBinaryBody(good.buffer, String(Number(good.length) - 3)), /JSON header \(the first \d+ bytes\) is not valid JSON/],
      ['truncated body', () => parseBinaryBody(good.buffer.subarray(0, good.buffer.length - 2), good.length), /binary_data_size \d+ goes past the end of the body/],
      ['extra bytes after the tensors', () => parseBinaryBody(body(valid(), Buffer.from([0])).buffer, good.length), /add up to/],
      [
        'negative binary_data_size',
        () => parseBinaryBody(Buffer.from(json.toString().replace('"binary_data_size":16', '"binary_data_size":-1')), good.length),
        /binary_data_size must be a whole number/,
      ],
      ['bytes after a header without inputs', () => parseBinaryBody(Buffer.from('{}xx'), '2'), /no inputs list/],
      [
        'shape disagrees with the byte count',
        () => feedsOf(body([{ ...valid()[0], tensor: { name: 'x', shape: [3, 2], datatype: 'FP32' } }, ...valid().slice(1)])),
        /needs 24 bytes \(6 elements × 4\), binary_data_size is 16/,
      ],
      [
        'NaN in FP32',
        () => feedsOf(body([{ ...valid()[0], bytes: Buffer.from(Float32Array.of(1, NaN, 3, 4).buffer) }, ...valid().slice(1)])),
        /element 1 must be a finite number, got NaN/,
      ],
      ['BOOL byte that is not 0 or 1', () => feedsOf(body([...valid().slice(0, 2), { ...valid()[2], bytes: Buffer.from([1, 7]) }, valid()[3]])), /element 1 must be 0 or 1/],
      [
        'BYTES length prefix cut off',
        () => feedsOf(body([...valid().slice(0, 3), { ...valid()[3], bytes: Buffer.concat([bytesOf(['a']), Buffer.from([1, 0])]) }])),
        /element 1's 4-byte length prefix is cut off/,
      ],
      [
        'BYTES element longer than the data',
        () => feedsOf(body([...valid().slice(0, 3), { ...valid()[3], bytes: Buffer.from([9, 0, 0, 0, 65]) }])),
        /element 0 claims 9 bytes, only 1 are left/,
      ],
      [
        'BYTES count disagrees with the shape',
        () => feedsOf(body([...valid().slice(0, 3), { ...valid()[3], bytes: bytesOf(['a']) }])),
        /needs 2 BYTES elements for its shape, the binary data holds 1/,
      ],
      ['BYTES invalid UTF-8', () => feedsOf(body([...valid().slice(0, 3), { ...valid()[3], bytes: bytesOf(['a']).fill(0xff, 4) }])), /element 0 is not valid UTF-8/],
      [
        'binary_data_size without the header',
        () => toFeeds([{ name: 'x', shape: [1, 2], datatype: 'FP32', parameters: { binary_data_size: 8 } }], MODEL, 100),
        /no Inference-Header-Content-Length/,
      ],
      ['neither data nor bytes', () => toFeeds([{ name: 'x', shape: [1, 2], datatype: 'FP32' }], MODEL, 100), /neither data nor parameters.binary_data_size/],
    ];
    for (const [what, run, message] of cases) {
      try {
        rejects(run, message);
      } catch (err) {
        throw new Error(`${what}: ${(err as Error).message}`);
      }
    }
  });
});
