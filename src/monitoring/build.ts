// Builds a reference profile from reference data: a window of a table (the training
// period), a CSV file, or the rows a previous batch run scored. The data is scored with the
// model itself, so the profile holds the prediction distribution as well.
import fs from 'node:fs';
import { parse } from 'csv-parse';
import Cursor from 'pg-cursor';
import type { Pool } from '../db/pool.ts';
import { quoteIdent, quoteTable } from '../batch/job.ts';
import { DataPlane } from '../inference/data-plane.ts';
import type { FeatureRecord } from '../registry/features.ts';
import type { LoadedModel } from '../registry/runtime.ts';
import { FeatureReader } from './features.ts';
import { ProfileBuilder, ProfileError, type Profile } from './profile.ts';

export type ProfileSource =
  | { kind: 'table'; table: string; timestampColumn: string; from: string; to: string; actualColumn?: string }
  | { kind: 'csv'; file: string; actualColumn?: string }
  | { kind: 'run'; runId: string };

const BATCH = 8192;
const plane = new DataPlane({ lane: 'cli', sliceRecords: BATCH });

async function addBatch(builder: ProfileBuilder, reader: FeatureReader, model: LoadedModel, rows: FeatureRecord[], actualColumn?: string): Promise<void> {
  const { predictions } = await plane.many(model, rows);
  const values: unknown[] = [];
  rows.forEach((row, i) => {
    reader.read(row, values);
    builder.add(values, predictions[i], actualColumn ? row[actualColumn] : undefined);
  });
}

function describe(source: ProfileSource): string {
  if (source.kind === 'table') return `table ${source.table} ${source.timestampColumn} in [${source.from}, ${source.to})`;
  if (source.kind === 'csv') return `csv ${source.file}`;
  return `batch run ${source.runId}`;
}

async function fromTable(pool: Pool, model: LoadedModel, source: Extract<ProfileSource, { kind: 'table' }>, builder: ProfileBuilder, reader: FeatureReader): Promise<void> {
  const table = quoteTable(source.table);
  const exists = await pool.query('SELECT to_regclass($1) AS oid', [table]);
  if (!exists.rows[0].oid) throw new ProfileError(`table ${source.table} does not exist`);
  for (const [what, at] of [
    ['--from', source.from],
    ['--to', source.to],
  ])
    if (Number.isNaN(Date.parse(at))) throw new ProfileError(`${what} must be an ISO date or timestamp, got ${JSON.stringify(at)}`);
  if (Date.parse(source.from) >= Date.parse(source.to)) throw new ProfileError(`--from (${source.from}) must be before --to (${source.to})`);
  const columns = [...new Set([...model.mapper.requiredFields(), ...(source.actualColumn ? [source.actualColumn] : [])])];
  const probe = await pool.query(`SELECT * FROM ${table} LIMIT 0`);
  const present = new Set(probe.fields.map((f) => f.name));
  const missing = [...columns, source.timestampColumn].filter((c) => !present.has(c));
  if (missing.length) throw new ProfileError(`table ${source.table} lacks column(s) ${missing.join(', ')}`);
  const client = await pool.connect();
  try {
    const cursor = client.query(
      new Cursor(`SELECT ${columns.map(quoteIdent).join(', ')} FROM ${table} WHERE ${quoteIdent(source.timestampColumn)} >= $1 AND ${quoteIdent(source.timestampColumn)} < $2`, [
        source.from,
        source.to,
      ]),
    );
    for (;;) {
      const rows: FeatureRecord[] = await cursor.read(BATCH);
      if (rows.length === 0) break;
      await addBatch(builder, reader, model, rows, source.actualColumn);
    }
    await cursor.close();
  } finally {
    client.release();
  }
}

async function fromCsv(model: LoadedModel, source: Extract<ProfileSource, { kind: 'csv' }>, builder: ProfileBuilder, reader: FeatureReader): Promise<void> {
  if (!fs.existsSync(source.file)) throw new ProfileError(`cannot read CSV file ${source.file}: it does not exist`);
  // Numbers become numbers, as a database row's would; an empty field is missing.
  const parser = fs
    .createReadStream(source.file)
    .pipe(parse({ columns: true, cast: (value) => (value === '' ? null : /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(value) ? Number(value) : value) }));
  let rows: FeatureRecord[] = [];
  try {
    for await (const row of parser) {
      rows.push(row);
      if (rows.length === BATCH) {
        await addBatch(builder, reader, model, rows, source.actualColumn);
        rows = [];
      }
    }
  } catch (err) {
    throw new ProfileError(`cannot parse CSV file ${source.file}: ${(err as Error).message}`);
  }
  if (rows.length) await addBatch(builder, reader, model, rows, source.actualColumn);
}

/** A run's source table, window and columns, as the run recorded them. */
async function runSource(pool: Pool, runId: string): Promise<Extract<ProfileSource, { kind: 'table' }>> {
  const { rows } = await pool.query(
    'SELECT source, window_start, window_end, source_columns FROM batch_runs WHERE run_id = $1 OR workflow_id = $1 ORDER BY started_at DESC LIMIT 1',
    [runId],
  );
  if (!rows[0]) throw new ProfileError(`no batch run ${runId}`);
  const columns = rows[0].source_columns;
  if (!columns) throw new ProfileError(`batch run ${runId} predates monitoring and did not record its source columns: build the profile from its table window instead`);
  return {
    kind: 'table',
    table: rows[0].source,
    timestampColumn: columns.timestampColumn,
    actualColumn: columns.actualColumn ?? undefined,
    from: new Date(rows[0].window_start).toISOString(),
    to: new Date(rows[0].window_end).toISOString(),
  };
}

export async function buildProfile(pool: Pool, model: LoadedModel, source: ProfileSource): Promise<Profile> {
  const resolved = source.kind === 'run' ? await runSource(pool, source.runId) : source;
  const reader = new FeatureReader(model);
  const builder = new ProfileBuilder(reader.features, Boolean(resolved.actualColumn));
  if (resolved.kind === 'table') await fromTable(pool, model, resolved, builder, reader);
  else await fromCsv(model, resolved, builder, reader);
  return builder.build(describe(source));
}
