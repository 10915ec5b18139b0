// The work of one batch run, without Temporal: plan key-range chunks, score a chunk, and
// summarise the run. The activities call these; so does the benchmark's no-Temporal floor.
import os from 'node:os';
import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { once } from 'node:events';
import Cursor from 'pg-cursor';
import pg from 'pg';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { from as copyFrom } from 'pg-copy-streams';
import type { Pool } from '../db/pool.ts';
import type { LoadedModel } from '../registry/runtime.ts';
import { csvField, csvText } from './csv.ts';
import { mergeStats, StatsAccumulator, type RunStats } from './stats.ts';
import { JobError, quoteIdent, quoteTable, type BatchJob } from './job.ts';
import { recordChunkCommitted } from '../observability/batch-metrics.ts';
import { DataPlane } from '../inference/data-plane.ts';
import { DriftAccumulator, mergePartials, type DriftPartial } from '../monitoring/histograms.ts';
import { computeDrift, summarizeDrift, type DriftSummary } from '../monitoring/drift.ts';
import type { Profile } from '../monitoring/profile.ts';
import { rejectedByReason } from '../monitoring/rejections.ts';
import { recordRunDrift } from '../observability/batch-metrics.ts';

export interface RunContext {
  runId: string;
  job: BatchJob;
  window: { from: string; to: string };
  model: { name: string; version: number };
}

export interface ChunkCounts {
  read: number;
  scored: number;
  rejected: number;
}

/** Which process scored a chunk (visible in batch_chunks.scored_by). */
const SCORER_IDENTITY = `${os.hostname()}:${process.pid}`;

/**
 * How the chunk's cursor parses column values: as pg does, except timestamps, which stay the
 * database's text (UTC sessions, no zone suffix for timestamp without time zone). They go
 * back into COPY as they came, and a Date per row is garbage that outlives the sub-batch.
 */
const ROW_TYPES = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === pg.types.builtins.TIMESTAMP || oid === pg.types.builtins.TIMESTAMPTZ) return (value: string) => value;
    return pg.types.getTypeParser(oid, format);
  },
};

/** Rows are mapped and scored in sub-batches this size, yielding to the event loop between them. */
const SUB_BATCH = 8192;

/** The inference path for batch chunks: one onnxruntime call per sub-batch, lane 'batch'. */
const plane = new DataPlane({ lane: 'batch', sliceRecords: SUB_BATCH });

function sourceColumns(job: BatchJob, model: LoadedModel): string[] {
  const { idColumn, timestampColumn, actualColumn, passthrough } = job.source;
  return [...new Set([idColumn, timestampColumn, ...(actualColumn ? [actualColumn] : []), ...passthrough, ...model.mapper.requiredFields()])];
}

/**
 * Checks the source and target, records the run and stores its chunk plan: key ranges of
 * about chunkSize rows each, computed in one pass over the window's ids.
 */
export async function planRun(pool: Pool, ctx: RunContext & { workflowId: string }, model: LoadedModel): Promise<{ chunks: number; rows: number }> {
  const { job, window } = ctx;
  const source = quoteTable(job.source.table);
  const target = quoteTable(job.target);
  const exists = await pool.query('SELECT to_regclass($1) AS oid', [source]);
  if (!exists.rows[0].oid) throw new JobError(`source table ${job.source.table} does not exist`);
  const columns = sourceColumns(job, model);
  const probe = await pool.query(`SELECT * FROM ${source} LIMIT 0`);
  const present = new Set(probe.fields.map((f) => f.name));
  const missing = columns.filter((c) => !present.has(c));
  if (missing.length) throw new JobError(`source table ${job.source.table} lacks column(s) ${missing.join(', ')} (needed by the job or by model ${model.name}@${model.version})`);
  if (job.target !== 'predictions') await pool.query(`CREATE TABLE IF NOT EXISTS ${target} (LIKE predictions INCLUDING ALL)`);

  const id = quoteIdent(job.source.idColumn);
  const ts = quoteIdent(job.source.timestampColumn);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(
      `INSERT INTO batch_runs (run_id, workflow_id, job, model_name, model_version, source, target, window_start, window_end, status)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'running')
       ON CONFLICT (run_id) DO UPDATE SET status = 'running', started_at = now(), finished_at = NULL`,
      [ctx.runId, ctx.workflowId, job.name, ctx.model.name, ctx.model.version, job.source.table, job.target, window.from, window.to],
    );
    // The run is measured against the version's reference profile as it is now (none: no drift).
    await client.query(
      `UPDATE batch_runs SET drift = NULL, drifted = NULL, source_columns = $4,
              reference = (SELECT profile FROM model_profiles WHERE name = $2 AND version = $3)
       WHERE run_id = $1`,
      [
        ctx.runId,
        ctx.model.name,
        ctx.model.version,
        JSON.stringify({ idColumn: job.source.idColumn, timestampColumn: job.source.timestampColumn, actualColumn: job.source.actualColumn ?? null }),
      ],
    );
    await client.query('DELETE FROM batch_chunks WHERE run_id = $1', [ctx.runId]);
    const plan = await client.query(
      `INSERT INTO batch_chunks (run_id, chunk_no, key_lo, key_hi, planned_rows)
       SELECT $1, bucket, min(k), max(k), count(*)
       FROM (SELECT ${id} AS k, (row_number() OVER (ORDER BY ${id}) - 1) / $2 AS bucket
             FROM ${source} WHERE ${ts} >= $3 AND ${ts} < $4 AND ${id} IS NOT NULL) keyed
       GROUP BY bucket
       RETURNING planned_rows`,
      [ctx.runId, job.chunkSize, window.from, window.to],
    );
    const rows = plan.rows.reduce((sum, r) => sum + r.planned_rows, 0);
    await client.query('UPDATE batch_runs SET chunks = $2 WHERE run_id = $1', [ctx.runId, plan.rowCount]);
    await client.query('COMMIT');
    return { chunks: plan.rowCount ?? 0, rows };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/**
 * Scores one chunk and replaces its predictions and rejected rows in one transaction, so
 * a retried chunk never duplicates or loses a row. Rows stream through in sub-batches (a
 * cursor in, COPY out), so memory stays flat whatever the chunk size.
 */
export async function scoreChunk(pool: Pool, ctx: RunContext, chunkNo: number, model: LoadedModel, heartbeat: () => void = () => {}, signal?: AbortSignal): Promise<ChunkCounts> {
  const { job, window } = ctx;
  const chunk = await pool.query('SELECT c.key_lo, c.key_hi, r.reference FROM batch_chunks c JOIN batch_runs r USING (run_id) WHERE c.run_id = $1 AND c.chunk_no = $2', [
    ctx.runId,
    chunkNo,
  ]);
  if (!chunk.rows[0]) throw new JobError(`run ${ctx.runId} has no chunk ${chunkNo}`);
  const { key_lo: lo, key_hi: hi } = chunk.rows[0];
  const reference: Profile | null = chunk.rows[0].reference;
  const drift = reference ? new DriftAccumulator(reference, model) : null;
  const { idColumn, timestampColumn, actualColumn, passthrough } = job.source;
  const id = quoteIdent(idColumn);
  const ts = quoteIdent(timestampColumn);
  const source = quoteTable(job.source.table);
  const target = quoteTable(job.target);
  const range = [job.name, lo, hi, window.from, window.to];
  const head = `${csvText(job.name)},`;
  const tail = `,${csvText(ctx.model.name)},${ctx.model.version},${csvText(ctx.runId)}\n`;

  const reader = await pool.connect();
  const writer = await pool.connect();
  // A cursor read on a connection that dies in between never settles: turn the loss of
  // either connection into an error, so the chunk fails (and is retried) instead of hanging
  // with its pool clients.
  let onLost: (err?: Error) => void = () => {};
  const connectionLost = new Promise<never>((_, reject) => {
    onLost = (err?: Error) => reject(err ?? new Error('the database connection closed'));
  });
  connectionLost.catch(() => {});
  for (const client of [reader, writer]) client.once('error', onLost).once('end', onLost);
  let failed = false;
  try {
    const cursor = reader.query(
      new Cursor(
        `SELECT ${sourceColumns(job, model).map(quoteIdent).join(', ')} FROM ${source} WHERE ${id} BETWEEN $1 AND $2 AND ${ts} >= $3 AND ${ts} < $4`,
        [lo, hi, window.from, window.to],
        { types: ROW_TYPES },
      ),
    );
    await writer.query('BEGIN');
    await writer.query(`DELETE FROM ${target} WHERE job = $1 AND entity_id BETWEEN $2 AND $3 AND event_time >= $4 AND event_time < $5`, range);
    await writer.query(
      `DELETE FROM rejected_rows r USING ${source} s
       WHERE r.job = $1 AND r.entity_id BETWEEN $2 AND $3 AND s.${id} = r.entity_id AND s.${ts} >= $4 AND s.${ts} < $5`,
      range,
    );
    const copy = writer.query(
      copyFrom(`COPY ${target} (job, entity_id, prediction, actual, event_time, passthrough, model_name, model_version, run_id) FROM STDIN WITH (FORMAT csv)`),
    );
    const copied = finished(copy);
    copied.catch(() => {}); // awaited below; this keeps an early failure from going unhandled
    const stats = new StatsAccumulator();
    const rejectedLines: string[] = [];
    let read = 0;
    for (;;) {
      const batch: Record<string, unknown>[] = await Promise.race([cursor.read(SUB_BATCH), connectionLost]);
      if (batch.length === 0) break;
      read += batch.length;
      const { predictions, errors } = await plane.many(model, batch);
      let text = '';
      for (let i = 0; i < batch.length; i++) {
        const p = predictions[i];
        const row = batch[i];
        const actual = actualColumn ? (row[actualColumn] as number | null) : null;
        drift?.add(row, p, actual);
        if (p === null) continue;
        stats.add(p, actual);
        const extra = passthrough.length ? csvField(Object.fromEntries(passthrough.map((c) => [c, row[c]]))) : '';
        text += `${head}${row[idColumn]},${p},${csvField(actual)},${csvField(row[timestampColumn])},${extra}${tail}`;
      }
      for (const e of errors) rejectedLines.push(`${head}${batch[e.index][idColumn]},${csvText(e.reason)},${csvText(ctx.runId)}\n`);
      if (copy.errored) throw copy.errored;
      if (text && !copy.write(text)) await once(copy, 'drain');
      heartbeat();
      await yieldToEventLoop();
      signal?.throwIfAborted(); // cancelled: the transaction rolls back, nothing of the chunk is kept
    }
    await cursor.close();
    copy.end();
    await copied;
    if (rejectedLines.length)
      await pipeline(Readable.from([rejectedLines.join('')]), writer.query(copyFrom('COPY rejected_rows (job, entity_id, reason, run_id) FROM STDIN WITH (FORMAT csv)')));
    const partial = stats.finish();
    await writer.query(
      `UPDATE batch_chunks SET rows_scored = $3, rows_rejected = $4, scored_by = $5, scored_at = now(),
              pred_sum = $6, pred_sumsq = $7, actual_rows = $8, sq_error_sum = $9, percentiles = $10, drift = $11
       WHERE run_id = $1 AND chunk_no = $2`,
      [
        ctx.runId,
        chunkNo,
        partial.count,
        rejectedLines.length,
        SCORER_IDENTITY,
        partial.sum,
        partial.sumsq,
        partial.actualRows,
        partial.sqErrorSum,
        JSON.stringify(partial.percentiles),
        drift ? JSON.stringify(drift.result()) : null,
      ],
    );
    await writer.query('COMMIT');
    recordChunkCommitted({ job: job.name, model: ctx.model }, { scored: partial.count, rejected: rejectedLines.length });
    return { read, scored: partial.count, rejected: rejectedLines.length };
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    for (const client of [reader, writer]) client.removeListener('error', onLost).removeListener('end', onLost);
    // A connection that failed mid-COPY or mid-transaction is discarded, not reused.
    reader.release(failed);
    writer.release(failed);
  }
}

export interface RunSummary {
  runId: string;
  job: string;
  model: { name: string; version: number };
  window: { from: string; to: string };
  status: 'succeeded' | 'failed';
  chunks: number;
  rowsRead: number;
  rowsScored: number;
  rowsRejected: number;
  durationMs: number;
  stats: RunStats | null;
  firstRejections: string[];
  /** Present when the model version has a reference profile (the full report is in batch_runs.drift). */
  drift?: DriftSummary;
}

/** Totals the chunks, merges their prediction statistics and closes the run's summary row. */
export async function finalizeRun(pool: Pool, ctx: RunContext): Promise<RunSummary> {
  const { rows: chunks } = await pool.query(
    `SELECT scored_at, rows_scored, rows_rejected, pred_sum, pred_sumsq, actual_rows, sq_error_sum, percentiles, drift
     FROM batch_chunks WHERE run_id = $1`,
    [ctx.runId],
  );
  const done = chunks.filter((c) => c.scored_at !== null).length;
  if (done !== chunks.length) throw new Error(`run ${ctx.runId}: only ${done} of ${chunks.length} chunks are scored`);
  const scored = chunks.reduce((n, c) => n + c.rows_scored, 0);
  const rejected = chunks.reduce((n, c) => n + c.rows_rejected, 0);
  const stats = mergeStats(
    chunks.map((c) => ({ count: c.rows_scored, sum: c.pred_sum, sumsq: c.pred_sumsq, actualRows: c.actual_rows, sqErrorSum: c.sq_error_sum, percentiles: c.percentiles })),
  );
  const rejections = await pool.query('SELECT entity_id, reason FROM rejected_rows WHERE run_id = $1 ORDER BY entity_id LIMIT 3', [ctx.runId]);
  const status = scored === 0 && rejected > 0 ? 'failed' : 'succeeded';
  const runRow = await pool.query('SELECT reference FROM batch_runs WHERE run_id = $1', [ctx.runId]);
  const reference: Profile | null = runRow.rows[0]?.reference ?? null;
  const partials = chunks.map((c) => c.drift as DriftPartial | null);
  const merged = reference && partials.every((p) => p !== null) ? mergePartials(partials as DriftPartial[]) : null;
  const report = reference && merged ? computeDrift(reference, merged, await rejectedByReason(pool, ctx.runId), ctx.job.drift) : null;
  const run = await pool.query(
    `UPDATE batch_runs SET status = $2, rows_read = $3, rows_scored = $4, rows_rejected = $5, stats = $6, drift = $7, drifted = $8,
            finished_at = now(), duration_ms = (extract(epoch FROM now() - started_at) * 1000)::bigint
     WHERE run_id = $1 RETURNING duration_ms`,
    [ctx.runId, status, scored + rejected, scored, rejected, JSON.stringify(stats), report && JSON.stringify(report), report?.drifted ?? null],
  );
  if (report) recordRunDrift({ job: ctx.job.name, model: ctx.model }, report);
  return {
    runId: ctx.runId,
    job: ctx.job.name,
    model: ctx.model,
    window: ctx.window,
    status,
    chunks: chunks.length,
    rowsRead: scored + rejected,
    rowsScored: scored,
    rowsRejected: rejected,
    durationMs: run.rows[0]?.duration_ms ?? 0,
    stats,
    firstRejections: rejections.rows.map((r) => `${r.entity_id}: ${r.reason}`),
    ...(report ? { drift: summarizeDrift(report) } : {}),
  };
}
