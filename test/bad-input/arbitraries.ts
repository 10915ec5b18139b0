// fast-check arbitraries for malformed input: values JSON can and cannot carry, strings
// that break naive parsers and SQL, bodies that are not JSON at all, and invalid UTF-8.
import fc from 'fast-check';

/** Text that once broke something somewhere: SQL, NUL, lone surrogates, numbers as strings, unicode. */
export const NASTY_STRINGS = [
  '',
  ' ',
  'NaN',
  'Infinity',
  '-Infinity',
  '-0',
  '1e400',
  '0x10',
  'null',
  'true',
  'undefined',
  '__proto__',
  'constructor',
  'x"; DROP TABLE rides; --',
  "'; DELETE FROM prediction_log; --",
  'rides;',
  'a b',
  'rides.public.x',
  '"quoted"',
  '\u0000',
  'a\u0000b',
  '\ud800',
  '\udfff x',
  '\u202e\u0631\u0627\u0643\u0628',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🚕',
  'ä',
  '\r\n\t',
  '../../etc/passwd',
  '%00%ff',
  '${jndi:ldap://x}',
  '2024-13-45',
  'x'.repeat(300),
] as const;

export const nastyString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 200_000 }).map((n) => 'y'.repeat(n)) },
);

/** Numbers JSON.stringify can write (NaN and ±Infinity become null, -0 becomes 0). */
export const nastyNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, -0, 1e308, -1e308, 5e-324, Number.MAX_SAFE_INTEGER + 2, -1, 3.4e38, 1e39, 263, 264),
  fc.double(),
  fc.integer(),
);

const FIELD_NAMES = ['PULocationID', 'DOLocationID', 'trip_distance', 'PU_DO'] as const;

export const key: fc.Arbitrary<string> = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...FIELD_NAMES) }, { weight: 1, arbitrary: nastyString.filter((s) => s.length < 500) });

/** Any JSON-able value, with nasty leaves, a few levels deep. */
export const nastyValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    nastyNumber,
    nastyString,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(key, tie('value'), { maxKeys: 5 }),
  ),
})).value;

/** A ride record where each field may be missing, of the wrong type, or out of range. */
export const badRecord: fc.Arbitrary<Record<string, unknown>> = fc
  .record(
    {
      PULocationID: fc.oneof(fc.integer({ min: 1, max: 265 }), nastyValue),
      DOLocationID: fc.oneof(fc.integer({ min: 1, max: 265 }), nastyValue),
      trip_distance: fc.oneof(fc.double({ min: 0, max: 100, noNaN: true }), nastyValue),
    },
    { requiredKeys: [] },
  )
  .chain((r) => fc.dictionary(key, nastyValue, { maxKeys: 3 }).map((extra) => ({ ...extra, ...r })));

/** Number tokens JSON.parse accepts but JSON.stringify never writes, and ones it rejects. */
const RAW_NUMBER_TOKENS = [
  '1e400',
  '-1e400',
  '1E+999',
  '-0',
  '-0.0',
  '1e-400',
  '0.0000000000000000000000001',
  '123456789012345678901234567890',
  'NaN',
  'Infinity',
  '-Infinity',
  '+1',
  '01',
  '.5',
  '0x1F',
];

/** JSON text (or almost): rides with raw number tokens, truncated and deeply nested documents. */
export const jsonishText: fc.Arbitrary<string> = fc.oneof(
  fc
    .tuple(fc.constantFrom(...RAW_NUMBER_TOKENS), fc.constantFrom(...RAW_NUMBER_TOKENS), fc.constantFrom(...RAW_NUMBER_TOKENS))
    .map(([pu, dr, dist]) => `{"PULocationID":${pu},"DOLocationID":${dr},"trip_distance":${dist}}`),
  fc.tuple(badRecord, fc.nat()).map(([r, cut]) => {
    const text = JSON.stringify(r);
    return text.slice(0, cut % (text.length + 1));
  }),
  fc.integer({ min: 1, max: 50_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
  fc.integer({ min: 1, max: 5_000 }).map((n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)),
  fc.integer({ min: 1, max: 5_000 }).map((n) => '{"PULocationID":10,"DOLocationID":50,"trip_distance":' + '['.repeat(n) + '1' + ']'.repeat(n) + '}'),
  fc.constantFrom(
    '',
    ' ',
    'null',
    'true',
    '0',
    '"ride"',
    '[]',
    '{}',
    '{"PULocationID":10,}',
    "{'PULocationID':10}",
    '{"__proto__":{"x":1}}',
    '{"constructor":{"prototype":{"x":1}}}',
    '\ufeff{}',
    '{"a":1}{"b":2}',
  ),
);

/** Bytes that are not valid UTF-8 (lone continuation bytes, overlongs, surrogates, truncated sequences). */
const INVALID_UTF8 = [[0xff], [0xfe, 0xff], [0x80], [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xc3]];

/** A JSON ride whose string field holds invalid UTF-8, or pure binary garbage. */
export const rawBytes: fc.Arbitrary<Buffer> = fc.oneof(
  fc.tuple(fc.constantFrom(...INVALID_UTF8), fc.constantFrom('PULocationID', 'DOLocationID', 'trip_distance', 'extra')).map(([bad, field]) => {
    const record: Record<string, unknown> = { PULocationID: 10, DOLocationID: 50, trip_distance: 4, [field]: '@@' };
    const [before, after] = JSON.stringify(record).split('@@');
    return Buffer.concat([Buffer.from(before), Buffer.from(bad), Buffer.from(after)]);
  }),
  fc.uint8Array({ maxLength: 2_000 }).map((a) => Buffer.from(a)),
  fc.tuple(fc.constantFrom(...INVALID_UTF8), fc.nat({ max: 40 })).map(([bad, at]) => {
    const text = Buffer.from(JSON.stringify({ id: 'x', type: 'ride_started', payload: { ride: { PULocationID: 10 } } }));
    const cut = Math.min(at, text.length);
    return Buffer.concat([text.subarray(0, cut), Buffer.from(bad), text.subarray(cut)]);
  }),
);

/** Content types a client might send instead of application/json; null sends none. */
export const contentType: fc.Arbitrary<string | null> = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'APPLICATION/JSON',
  'text/plain',
  'text/html',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  'application/jsonx',
  'application/',
  '*/*',
  ';;;',
  null,
);
