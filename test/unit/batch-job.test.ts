// Batch jobs: windows, identifiers and merged statistics.
import { describe, expect, it } from 'vitest';
import { parseJob, quoteIdent, quoteTable, targetColumns } from '../../src/batch/job.ts';
import { chunkStats, mergeStats } from '../../src/batch/stats.ts';
import { batchWorkflowId, previousPeriod } from '../../workflows/batch-window.ts';

describe('windows', () => {
  it("the course's monthly run on 2 March 03:00 scores February", () => {
    expect(previousPeriod('month', new Date('2024-03-02T03:00:00Z'))).toEqual({ from: '2024-02-01T00:00:00.000Z', to: '2024-03-01T00:00:00.000Z' });
    expect(previousPeriod('month', new Date('2024-01-02T03:00:00Z'))).toEqual({ from: '2023-12-01T00:00:00.000Z', to: '2024-01-01T00:00:00.000Z' });
    expect(previousPeriod('day', new Date('2024-03-01T00:30:00Z'))).toEqual({ from: '2024-02-29T00:00:00.000Z', to: '2024-03-01T00:00:00.000Z' });
    expect(previousPeriod('hour', new Date('2024-03-01T00:30:00Z'))).toEqual({ from: '2024-02-29T23:00:00.000Z', to: '2024-03-01T00:00:00.000Z' });
  });

  it('workflow ids name the job and the window', () => {
    expect(batchWorkflowId('monthly', { from: '2024-02-01T00:00:00.000Z', to: '2024-03-01T00:00:00.000Z' })).toBe('batch-monthly-20240201T0000Z-20240301T0000Z');
  });
});

describe('jobs', () => {
  const columns = { idColumn: 'id', timestampColumn: 'created_at' };
  const base = { name: 'j', model: 'm', source: { table: 'rides', ...columns }, window: { from: '2024-01-01', to: '2024-02-01' } };

  it('fills defaults', () => {
    expect(parseJob(base)).toMatchObject({ target: 'predictions', chunkSize: 50_000, parallelism: 4, source: { ...columns, passthrough: [] } });
  });

  it("needs the id and timestamp columns: no table has the example rides' columns by default", () => {
    const job = { ...base, source: { table: 'rides' } };
    expect(() => parseJob(job)).toThrow(
      "source.idColumn: give the source's integer key column (--id-column); source.timestampColumn: give the column the window applies to (--timestamp-column)",
    );
  });

  it.each([
    [{ ...base, source: { ...base.source, table: 'rides; DROP TABLE x' } }, 'source.table'],
    [{ ...base, source: { ...base.source, idColumn: 'id"--' } }, 'source.idColumn'],
    [{ ...base, source: { ...base.source, passthrough: ['a b'] } }, 'source.passthrough.0'],
    [{ ...base, target: 'pg_catalog.pg_class; --' }, 'target'],
    [{ ...base, window: { from: '2024-02-01', to: '2024-01-01' } }, 'window.from must be before window.to'],
    [{ ...base, window: { from: 'soon', to: '2024-01-01' } }, 'window.from'],
    [{ name: 'j', model: 'm', source: base.source }, 'give either window'],
    [{ ...base, chunkSize: 5 }, 'chunkSize'],
  ])('rejects %j naming %s', (job, message) => {
    expect(() => parseJob(job)).toThrow(message);
  });

  it("maps a target table of the user's own: mldeploy's fields and the source columns the job reads", () => {
    const job = parseJob({
      ...base,
      source: { ...base.source, passthrough: ['zone'] },
      target: 'analytics.trips',
      targetColumns: { id: 'trip_id', prediction: 'predicted_duration', created_at: 'at', zone: 'pickup_zone', model_version: 'v' },
    });
    expect(targetColumns(job)).toEqual([
      { column: 'trip_id', field: 'entity_id' },
      { column: 'predicted_duration', field: 'prediction' },
      { column: 'at', field: 'event_time' },
      { column: 'pickup_zone', source: 'zone' },
      { column: 'v', field: 'model_version' },
    ]);
    // Without a mapping: the full layout, column for column.
    expect(targetColumns(parseJob({ ...base, target: 'mine' })).map((c) => c.column)).toEqual([
      'entity_id',
      'prediction',
      'actual',
      'event_time',
      'passthrough',
      'job',
      'model_name',
      'model_version',
      'run_id',
    ]);
  });

  it.each([
    [{ entity_id: 'id' }, 'map prediction'],
    [{ prediction: 'p' }, 'map the entity key'],
    [{ entity_id: 'id', prediction: 'p', fare: 'f' }, 'unknown key(s) fare'],
    [{ entity_id: 'x', prediction: 'x' }, 'column(s) x receive more than one value'],
    [{ entity_id: 'id', prediction: 'p; DROP TABLE t' }, 'must be an SQL identifier'],
    [{ 'a b': 'id', prediction: 'p' }, 'targetColumns'],
  ])('rejects the target mapping %j (%s)', (targetColumns, message) => {
    expect(() => parseJob({ ...base, target: 'mine', targetColumns })).toThrow(message);
  });

  it('keeps predictions to its own layout', () => {
    expect(() => parseJob({ ...base, targetColumns: { entity_id: 'id', prediction: 'p' } })).toThrow('predictions has a fixed layout');
  });

  it('quotes only valid identifiers', () => {
    expect(quoteIdent('PULocationID')).toBe('"PULocationID"');
    expect(quoteTable('public.rides')).toBe('"public"."rides"');
    expect(() => quoteIdent('a"b')).toThrow(/invalid SQL identifier/);
    expect(() => quoteTable('a.b.c')).toThrow(/invalid table name/);
  });
});

describe('run statistics', () => {
  it('merges chunk partials into exact mean, std and RMSE, and close quantiles', () => {
    let seed = 7;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const all: number[] = [];
    const chunks = [3000, 5000, 1234].map((n) => {
      const p = Float64Array.from({ length: n }, () => random() * 100);
      all.push(...p);
      return chunkStats(
        p,
        Array.from(p, (v) => v + 2),
      );
    });
    const merged = mergeStats(chunks)!;
    const mean = all.reduce((a, b) => a + b, 0) / all.length;
    const std = Math.sqrt(all.reduce((a, b) => a + (b - mean) ** 2, 0) / all.length);
    expect(merged.mean).toBeCloseTo(mean, 9);
    expect(merged.std).toBeCloseTo(std, 9);
    expect(merged.rmse).toBeCloseTo(2, 9);
    const sorted = [...all].sort((a, b) => a - b);
    expect(Math.abs(merged.quantiles.p50 - sorted[Math.floor(sorted.length / 2)])).toBeLessThan(2);
    expect(Math.abs(merged.quantiles.p95 - sorted[Math.floor(sorted.length * 0.95)])).toBeLessThan(2);
    expect(mergeStats([])).toBeNull();
  });
});

describe('job windows are strict ISO dates', () => {
  const job = (from: string) => ({ name: 'j', model: 'm', source: { table: 'rides', idColumn: 'id', timestampColumn: 'created_at' }, window: { from, to: '2030-01-01' } });
  it.each(['2024-01-01', '2024-01-01T00:00:00Z', '2024-01-01T03:00', '2024-02-29T10:00:00.123+02:00', '2024-01-01 03:00:00'])('accepts %s', (from) => {
    expect(() => parseJob(job(from))).not.toThrow();
  });
  it.each(['x"; DROP TABLE rides; -- 2024', '2024-02-30', '1', 'March 2024', '2024-13-01', '2024-01-01T25:00'])('rejects %s', (from) => {
    expect(() => parseJob(job(from))).toThrow(/window.from/);
  });
});
