// Bad-input suite, CLI validators: dates, model references, job specs and SQL identifiers
// (injection attempts, unicode, very long) either pass strictly or fail with a clear,
// typed error; never a TypeError, never a quoted identifier with a quote inside.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { JobError, parseJob, quoteIdent, quoteTable } from '../../src/batch/job.ts';
import { UsageError } from '../../src/cli/context.ts';
import { parseDate } from '../../src/cli/dates.ts';
import { parseModelRef, RefError } from '../../src/registry/refs.ts';
import { nastyString, nastyValue } from '../bad-input/arbitraries.ts';
import { runs, Tally } from '../bad-input/runs.ts';

const tally = new Tally();
afterAll(() => tally.print('CLI validators'));

const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const identLike = fc.oneof(
  nastyString,
  fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,70}$/),
  fc.constantFrom('rides', 'public.rides', 'a.b.c', 'rides;', '"rides"', 'x"; DROP TABLE rides; --'),
);

/** Runs `f`; returns its error when it throws one of `types`, fails the test on any other error. */
function outcome<T>(f: () => T, ...types: Array<new (...args: never[]) => Error>): { value?: T; error?: Error } {
  try {
    return { value: f() };
  } catch (err) {
    expect(
      types.some((t) => err instanceof t),
      `unexpected ${(err as Error).name}: ${(err as Error).message}`,
    ).toBe(true);
    expect((err as Error).message.length).toBeGreaterThan(10);
    return { error: err as Error };
  }
}

describe('CLI bad input (pure validators)', () => {
  it('quoteIdent and quoteTable quote only strict identifiers', () => {
    fc.assert(
      fc.property(identLike, (name) => {
        tally.add('table and column names');
        const ident = outcome(() => quoteIdent(name), JobError);
        expect(ident.value === undefined).toBe(!IDENT.test(name));
        if (ident.value) expect(ident.value).toBe(`"${name}"`);
        const table = outcome(() => quoteTable(name), JobError);
        if (table.value) {
          expect(name.split('.').every((p) => IDENT.test(p))).toBe(true);
          expect(table.value.replaceAll('"', '')).toBe(name);
        }
      }),
      runs(3_000),
    );
  });

  it('parseModelRef accepts name, name@alias, name@version and nothing else', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          nastyString,
          fc
            .tuple(
              fc.constantFrom('trip-duration', 'a', '-x', 'x'.repeat(129)),
              fc.constantFrom('', '@', '@production', '@0', '@1', '@01', '@99999999999999999999', '@2147483648', '@@x', '@a b', '@é', '@x@y'),
            )
            .map(([a, b]) => a + b),
        ),
        (ref) => {
          tally.add('model references');
          const { value } = outcome(() => parseModelRef(ref), RefError);
          if (value) {
            expect(value.name).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/);
            if (value.version !== undefined) expect(Number.isSafeInteger(value.version) && value.version >= 1 && value.version <= 2_147_483_647).toBe(true);
            if (value.alias !== undefined) expect(value.alias).toMatch(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/);
          }
        },
      ),
      runs(3_000),
    );
  });

  it('the CLI date parser takes ISO dates only, and only real days', () => {
    const dates = fc.oneof(
      nastyString,
      fc
        .tuple(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }))
        .map(([y, m, d]) => `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`),
      fc.date({ noInvalidDate: true, min: new Date('1900-01-01'), max: new Date('2999-12-31') }).map((d) => d.toISOString()),
      fc.constantFrom('1', 'March 7', '2024-01-01; DROP TABLE rides', 'x"; DROP TABLE rides; -- 2024', '2024-02-29', '2023-02-29', '2024-1-1', '2024-01-01T24:61:00Z'),
    );
    fc.assert(
      fc.property(dates, (text) => {
        tally.add('dates');
        const { value } = outcome(() => parseDate('--from', text), UsageError);
        if (value) {
          expect(text).toMatch(/^\d{4}-\d{2}/);
          expect(value.toISOString().slice(0, 7)).toBe(/[+-]\d{2}:?\d{2}$/.test(text) ? value.toISOString().slice(0, 7) : text.slice(0, 7));
        }
      }),
      runs(3_000),
    );
  });

  it('parseJob rejects malformed jobs with a JobError and accepts only strict identifiers', () => {
    const job = fc.record(
      {
        name: fc.oneof(fc.constant('rides-job'), nastyValue),
        model: fc.oneof(fc.constant('trip-duration@production'), nastyValue),
        source: fc.oneof(
          fc.record(
            { table: identLike, idColumn: identLike, timestampColumn: identLike, actualColumn: identLike, passthrough: fc.array(identLike, { maxLength: 3 }) },
            { requiredKeys: ['table', 'idColumn', 'timestampColumn'] },
          ),
          nastyValue,
        ),
        window: fc.oneof(fc.record({ from: fc.oneof(fc.constant('2024-01-01'), nastyString), to: fc.oneof(fc.constant('2024-02-01'), nastyString) }), nastyValue),
        period: fc.oneof(fc.constantFrom('hour', 'day', 'month', 'week'), nastyValue),
        target: identLike,
        chunkSize: fc.oneof(fc.integer({ min: 100, max: 1_000_000 }), nastyValue),
        parallelism: fc.oneof(fc.integer({ min: 1, max: 64 }), nastyValue),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(job, nastyValue), (input) => {
        tally.add('batch job specs');
        const { value } = outcome(() => parseJob(input), JobError);
        if (value) {
          for (const t of [value.source.table, value.target]) expect(() => quoteTable(t)).not.toThrow();
          for (const c of [value.source.idColumn, value.source.timestampColumn, ...(value.source.actualColumn ? [value.source.actualColumn] : []), ...value.source.passthrough])
            expect(c).toMatch(IDENT);
        }
      }),
      runs(3_000),
    );
  });
});
