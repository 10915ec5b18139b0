// The work of one batch run, without Temporal: plan key-range chunks, score a chunk, and
// summarise the run. The activities call these; so does the benchmark's no-Temporal floor.
import os from 'node:os';
import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { once } from 'node:events';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { from as copyFrom } from 'pg-copy-streams';
import type pg from 'pg';
import type { Pool } from '../db/pool.ts';
import type { LoadedModel } from '../registry/runtime.ts';
import { csvText } from './csv.ts';
import { ColumnBatch, copyColumns, int64Text, planColumns, rowViews, type ColumnPlan } from './columns.ts';
import { LeanRows, MappedRows, type Scored } from './copy-out.ts';
import { mergeStats, StatsAccumulator, type RunStats } from './stats.ts';
import { JobError, quoteIdent, quoteTable, targetColumns, type BatchJob } from './job.ts';
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

/** Rows are mapped and scored in sub-batches this size, yielding to the event loop between them. */
const SUB_BATCH = 8192;

/** The inference path for batch chunks: one onnxruntime call per sub-batch, lane 'batch'. */
const plane = new DataPlane({ lane: 'batch', sliceRecords: SUB_BATCH });

function sourceColumns(job: BatchJob, model: LoadedModel): string[] {
  const { idColumn, timestampColumn, actualColumn, passthrough } = job.source;
  return [...new Set([idColumn, timestampColumn, ...(actualColumn ? [actualColumn] : []), ...passthrough, ...model.mapper.requiredFields()])];
}

/** Today's full layout, for a target of the user's without a column mapping. */
const FULL_LAYOUT = `(job text NOT NULL, entity_id bigint NOT NULL, prediction double precision NOT NULL, actual double precision,
  event_time timestamp, passthrough jsonb, model_name text NOT NULL, model_version integer NOT NULL, run_id text NOT NULL,
  scored_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (job, entity_id))`;

/**
 * `predictions` is always there. A target with a column mapping must exist with the mapped
 * columns (it is the user's table); one without is created in the full layout when missing.
 */
async function prepareTarget(pool: Pool, job: BatchJob, target: string): Promise<void> {
  if (job.target === 'predictions') return;
  if (!job.targetColumns) {
    await pool.query(`CREATE TABLE IF NOT EXISTS ${target} ${FULL_LAYOUT}`);
    return;
  }
  const exists = await pool.query('SELECT to_regclass($1) AS oid', [target]);
  if (!exists.rows[0].oid) throw new JobError(`target table ${job.target} does not exist: create it, or leave targetColumns out to have mldeploy create one`);
  const probe = await pool.query(`SELECT * FROM ${target} LIMIT 0`);
  const present = new Set(probe.fields.map((f) => f.name));
  const missing = targetColumns(job)
    .map((m) => m.column)
    .filter((c) => !present.has(c));
  if (missing.length) throw new JobError(`target table ${job.target} lacks column(s) ${missing.join(', ')} named in targetColumns`);
}

/**
 * Key ranges of `size` rows each, in one ordered pass over the window's keys: streamed with
 * binary COPY and counted, so neither the database (a window function and a grouping) nor
 * this process (the keys) holds more than a sub-batch. Keys stay exact as text.
 */
async function chunkRanges(client: pg.PoolClient, keysInOrder: string, size: number): Promise<Array<{ lo: string; hi: string; rows: number }>> {
  const plan: ColumnPlan[] = [{ name: 'k', kind: 'key', select: 'k' }];
  const batch = new ColumnBatch(plan, SUB_BATCH);
  const chunks: Array<{ lo: string; hi: string; rows: number }> = [];
  let open: { lo: string; hi: string; rows: number } | null = null;
  await copyColumns(client, keysInOrder, batch, async (keys) => {
    const raw = keys.columns[0].raw;
    for (let i = 0; i < keys.length;) {
      if (!open) {
        open = { lo: int64Text(raw, i), hi: '', rows: 0 };
        chunks.push(open);
      }
      const take = Math.min(size - open.rows, keys.length - i);
      open.rows += take;
      i += take;
      open.hi = int64Text(raw, i - 1);
      if (open.rows === size) open = null;
    }
  });
  return chunks;
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
  await prepareTarget(pool, job, target);

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
      `UPDATE batch_runs SET drift = NULL, drifted = NULL, source_columns = $4, alert_webhook_url = $5,
              reference = (SELECT profile FROM model_profiles WHERE name = $2 AND version = $3)
       WHERE run_id = $1`,
      [
        ctx.runId,
        ctx.model.name,
        ctx.model.version,
        JSON.stringify({ idColumn: job.source.idColumn, timestampColumn: job.source.timestampColumn, actualColumn: job.source.actualColumn ?? null }),
        job.drift.webhook ?? null,
      ],
    );
    await client.query('DELETE FROM batch_chunks WHERE run_id = $1', [ctx.runId]);
    const chunks = await chunkRanges(
      client,
      `SELECT ${id}::int8 FROM ${source} WHERE ${ts} >= ${literal(window.from)} AND ${ts} < ${literal(window.to)} AND ${id} IS NOT NULL ORDER BY ${id}`,
      job.chunkSize,
    );
    await client.query(
      `INSERT INTO batch_chunks (run_id, chunk_no, key_lo, key_hi, planned_rows)
       SELECT $1, n - 1, lo, hi, planned FROM unnest($2::bigint[], $3::bigint[], $4::int[]) WITH ORDINALITY AS c (lo, hi, planned, n)`,
      [ctx.runId, chunks.map((c) => c.lo), chunks.map((c) => c.hi), chunks.map((c) => c.rows)],
    );
    const rows = chunks.reduce((sum, c) => sum + c.rows, 0);
    await client.query('UPDATE batch_runs SET chunks = $2 WHERE run_id = $1', [ctx.runId, chunks.length]);
    await client.query('COMMIT');
    return { chunks: chunks.length, rows };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** A value as an SQL literal (COPY takes no parameters). */
function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function integerLiteral(value: unknown): string {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`not an integer key: ${String(value)}`);
  return String(n);
}

/**
 * Scores one chunk and replaces its predictions and rejected rows in one transaction, so
 * a retried chunk never duplicates or loses a row. Rows stream through in sub-batches
 * (binary COPY out of the source into columns, COPY into the target), so memory stays flat
 * whatever the chunk size.
 */
export async function scoreChunk(pool: Pool, ctx: RunContext, chunkNo: number, model: LoadedModel, heartbeat: () => void = () => {}, signal?: AbortSignal): Promise<ChunkCounts> {
  const { job, window } = ctx;
  const chunk = await pool.query('SELECT c.key_lo, c.key_hi, r.reference, r.run_key FROM batch_chunks c JOIN batch_runs r USING (run_id) WHERE c.run_id = $1 AND c.chunk_no = $2', [
    ctx.runId,
    chunkNo,
  ]);
  if (!chunk.rows[0]) throw new JobError(`run ${ctx.runId} has no chunk ${chunkNo}`);
  const { key_lo: lo, key_hi: hi, run_key: runKey } = chunk.rows[0];
  const reference: Profile | null = chunk.rows[0].reference;
  const drift = reference ? new DriftAccumulator(reference, model) : null;
  const { idColumn, timestampColumn, actualColumn, passthrough } = job.source;
  const id = quoteIdent(idColumn);
  const ts = quoteIdent(timestampColumn);
  const source = quoteTable(job.source.table);
  const target = quoteTable(job.target);
  const lean = job.target === 'predictions';
  const mapping = lean ? [] : targetColumns(job);
  const range = [job.name, lo, hi, window.from, window.to];
  const head = `${csvText(job.name)},`;

  // The source's column types decide how each column travels in binary COPY.
  const probe = await pool.query(`SELECT ${sourceColumns(job, model).map(quoteIdent).join(', ')} FROM ${source} LIMIT 0`);
  const plans = planColumns(probe.fields, idColumn, timestampColumn);
  const batch = new ColumnBatch(plans, SUB_BATCH);
  const views = rowViews(plans, { batch }, SUB_BATCH);
  const rowSource = {
    key: batch.column(idColumn),
    time: batch.column(timestampColumn),
    actual: actualColumn ? batch.column(actualColumn) : null,
    passthrough: passthrough.map((c) => batch.column(c)),
  };
  const mappedRows = lean ? null : new MappedRows(mapping, rowSource, batch, { job: job.name, modelName: ctx.model.name, modelVersion: ctx.model.version, runId: ctx.runId });

  const reader = await pool.connect();
  const writer = await pool.connect();
  // A read on a connection that dies in between may never settle: turn the loss of either
  // connection into an error, so the chunk fails (and is retried) instead of hanging with
  // its pool clients.
  let onLost: (err?: Error) => void = () => {};
  const connectionLost = new Promise<never>((_, reject) => {
    onLost = (err?: Error) => reject(err ?? new Error('the database connection closed'));
  });
  connectionLost.catch(() => {});
  for (const client of [reader, writer]) client.once('error', onLost).once('end', onLost);
  let failed = false;
  try {
    await writer.query('BEGIN');
    await deleteChunk(writer, job, target, mapping, range);
    await writer.query(
      `DELETE FROM rejected_rows r USING ${source} s
       WHERE r.job = $1 AND r.entity_id BETWEEN $2 AND $3 AND s.${id} = r.entity_id AND s.${ts} >= $4 AND s.${ts} < $5`,
      range,
    );
    // The COPY starts with the first scored sub-batch: a classifier's result says whether
    // there are labels (and probabilities) to store.
    let leanRows = null as LeanRows | null;
    let copy = null as ReturnType<typeof copyFrom> | null;
    let copied: Promise<void> = Promise.resolve();
    const startCopy = (first: Scored) => {
      if (lean) leanRows = new LeanRows(runKey, rowSource, { label: first.labels !== undefined, probabilities: job.probabilities && first.probabilities !== undefined });
      const columns = (leanRows ?? mappedRows)!.columns.map(quoteIdent).join(', ');
      const stream = writer.query(copyFrom(lean ? `COPY batch_predictions (${columns}) FROM STDIN (FORMAT binary)` : `COPY ${target} (${columns}) FROM STDIN WITH (FORMAT csv)`));
      copied = finished(stream);
      copied.catch(() => {}); // awaited below; this keeps an early failure from going unhandled
      if (lean) stream.write(LeanRows.header());
      return stream;
    };
    const stats = new StatsAccumulator();
    const rejectedLines: string[] = [];
    const key = rowSource.key;
    const actual = rowSource.actual;
    const select = `SELECT ${plans.map((p) => p.select).join(', ')} FROM ${source}
      WHERE ${id} BETWEEN ${integerLiteral(lo)} AND ${integerLiteral(hi)} AND ${ts} >= ${literal(window.from)} AND ${ts} < ${literal(window.to)}`;
    const read = await copyColumns(
      reader,
      select,
      batch,
      async (rows) => {
        const records = rows.length === views.length ? views : views.slice(0, rows.length);
        const scored = await plane.many(model, records);
        const { predictions, errors } = scored;
        drift?.addColumns(rows, records, predictions, actual);
        for (let i = 0; i < rows.length; i++) {
          const p = predictions[i];
          if (p === null) continue;
          const a = actual ? (actual.nulls[i] ? null : actual.plan.kind === 'float' ? actual.f64[i] : records[i][actual.plan.name]) : null;
          stats.add(p, a as number | null);
        }
        for (const e of errors) rejectedLines.push(`${head}${int64Text(key.raw, e.index)},${csvText(e.reason)},${csvText(ctx.runId)}\n`);
        copy ??= startCopy(scored);
        if (copy.errored) throw copy.errored;
        const out = leanRows ? leanRows.encode(rows, scored) : mappedRows!.encode(rows, scored);
        if (out.length && !copy.write(out)) await Promise.race([once(copy, 'drain'), connectionLost]);
        heartbeat();
        await yieldToEventLoop();
        signal?.throwIfAborted(); // cancelled: the transaction rolls back, nothing of the chunk is kept
      },
      (p) => Promise.race([p, connectionLost]),
    );
    if (copy) {
      if (lean) copy.write(LeanRows.trailer());
      copy.end();
      await Promise.race([copied, connectionLost]);
    }
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

/**
 * Deletes what an earlier attempt (or an earlier run of the job) stored for the chunk's
 * rows: by key range and window where the target keeps the event time, else the keys the
 * source holds in that range and window.
 */
async function deleteChunk(writer: pg.PoolClient, job: BatchJob, target: string, mapping: ReturnType<typeof targetColumns>, range: unknown[]): Promise<void> {
  const [jobName, lo, hi, from, to] = range;
  if (job.target === 'predictions') {
    await writer.query(
      `DELETE FROM batch_predictions p USING batch_runs r
       WHERE r.job = $1 AND p.run_key = r.run_key AND p.entity_id BETWEEN $2 AND $3 AND p.event_time >= $4 AND p.event_time < $5`,
      range,
    );
    return;
  }
  const column = (field: string) => mapping.find((m) => m.field === field)?.column;
  const entity = quoteIdent(column('entity_id')!);
  const jobColumn = column('job');
  const time = column('event_time');
  const params: unknown[] = [lo, hi, from, to];
  const ofJob = jobColumn ? ` AND t.${quoteIdent(jobColumn)} = $5` : '';
  if (jobColumn) params.push(jobName);
  if (time) {
    const t = quoteIdent(time);
    await writer.query(`DELETE FROM ${target} t WHERE t.${entity} BETWEEN $1 AND $2 AND t.${t} >= $3 AND t.${t} < $4${ofJob}`, params);
  } else {
    const id = quoteIdent(job.source.idColumn);
    const ts = quoteIdent(job.source.timestampColumn);
    await writer.query(
      `DELETE FROM ${target} t USING ${quoteTable(job.source.table)} s
       WHERE t.${entity} = s.${id} AND s.${id} BETWEEN $1 AND $2 AND s.${ts} >= $3 AND s.${ts} < $4${ofJob}`,
      params,
    );
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
