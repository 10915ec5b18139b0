// Batch predictions into a table of the user's own (targetColumns), into a target in the full
// layout (a target without a mapping), and a classifier's labels and class probabilities (a
// batch run of a real classifier, and the binary COPY encoding); on a real Temporal dev
// server and PostgreSQL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkflowFailedError } from '@temporalio/client';
import { startBatchRun } from '../../src/batch/client.ts';
import type { BatchJobInput } from '../../src/batch/job.ts';
import { ColumnBatch, copyColumns, planColumns } from '../../src/batch/columns.ts';
import { LeanRows } from '../../src/batch/copy-out.ts';
import { from as copyFrom } from 'pg-copy-streams';
import { finished } from 'node:stream/promises';
import fs from 'node:fs';
import path from 'node:path';
import { registerModel } from '../../src/registry/register.ts';
import { FIXTURES, openTestEnv, registerExample, startTestWorker, uniqueName, type TestEnv } from '../helpers.ts';
import { januaryJob, ridesTable, workerFailingAfterWrite } from './batch-support.ts';

let env: TestEnv;
let model: string;
beforeAll(async () => {
  env = await openTestEnv();
  model = (await registerExample(env, 'trip-duration')).name;
});
afterAll(async () => env.close());

const JANUARY = { from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00Z' };

function job(source: string, extra: Partial<BatchJobInput> = {}): BatchJobInput {
  return januaryJob(model, source, { chunkSize: 2_000, ...extra });
}

describe('batch targets', () => {
  it("writes a user's own table through its column mapping, the same predictions as the lean layout, and a re-run replaces them", async () => {
    const { view } = await ridesTable(env.pool, { '2024-01': 6_000, '2024-02': 500 });
    const table = uniqueName('trips_scored').replace(/-/g, '_');
    await env.pool.query(
      `CREATE TABLE ${table} (id bigint PRIMARY KEY, predicted_duration real NOT NULL, pickup timestamptz, pu_zone integer, scored_by_model text, extra text DEFAULT 'kept')`,
    );
    const worker = await startTestWorker(env);
    try {
      const lean = job(view);
      expect((await (await startBatchRun(env.client, worker.taskQueue, lean)).result()).rowsScored).toBe(6_000);
      const mapped = job(view, {
        target: table,
        targetColumns: { ride_id: 'id', prediction: 'predicted_duration', lpep_pickup_datetime: 'pickup', PULocationID: 'pu_zone', model_name: 'scored_by_model' },
      });
      for (let run = 0; run < 2; run++) {
        const summary = await (await startBatchRun(env.client, worker.taskQueue, mapped)).result();
        expect(summary).toMatchObject({ status: 'succeeded', rowsScored: 6_000, rowsRejected: 0 });
      }
      const { rows } = await env.pool.query(
        `SELECT t.id, t.predicted_duration, t.pickup, t.pu_zone, t.scored_by_model, t.extra, p.prediction, p.event_time, p.passthrough, v."PULocationID" AS pu
         FROM ${table} t JOIN predictions p ON p.job = $1 AND p.entity_id = t.id JOIN ${view} v ON v.ride_id = t.id ORDER BY t.id`,
        [lean.name],
      );
      expect(rows).toHaveLength(6_000);
      for (const r of rows) {
        expect(r.predicted_duration).toBeCloseTo(r.prediction, 4);
        expect(r.pickup.getTime()).toBe(r.event_time.getTime());
        expect(r.pu_zone).toBe(r.pu);
        expect(r.passthrough.PULocationID).toBe(r.pu);
        expect(r.scored_by_model).toBe(model);
        expect(r.extra).toBe('kept');
      }
    } finally {
      await worker.stop();
    }
  });

  it('a chunk retried after its write replaces its own rows in a mapped table without an event time (deleted by the source keys)', async () => {
    const { table: rides, view } = await ridesTable(env.pool, { '2024-01': 4_300 });
    // Every 15th ride moves to December: its key lies among January's, outside the window.
    const moved = await env.pool.query(`UPDATE ${rides} SET lpep_pickup_datetime = lpep_pickup_datetime - interval '31 days' WHERE ride_id % 15 = 0`);
    const january = 4_300 - (moved.rowCount ?? 0);
    const table = uniqueName('scored').replace(/-/g, '_');
    await env.pool.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, yhat double precision)`);
    // December's rides were scored into the table before: the January run leaves them alone.
    await env.pool.query(`INSERT INTO ${table} SELECT ride_id, -1 FROM ${view} WHERE lpep_pickup_datetime < '2024-01-01'`);
    const taskQueue = uniqueName('tq');
    const failing = await workerFailingAfterWrite(env, taskQueue);
    const input = job(view, { target: table, targetColumns: { entity_id: 'id', prediction: 'yhat' } });
    const summary = await failing.worker.runUntil(async () => (await startBatchRun(env.client, taskQueue, input)).result());
    await failing.release();
    expect(failing.injected()).toBe(Math.ceil(january / 2_000));
    expect(summary).toMatchObject({ rowsScored: january, rowsRejected: 0 });
    const { rows } = await env.pool.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE yhat = -1)::int AS december FROM ${table}`);
    expect(rows[0]).toEqual({ n: 4_300, december: 4_300 - january });
  });

  it('a target without a mapping gets the full layout, as before', async () => {
    const { view } = await ridesTable(env.pool, { '2024-01': 3_000 });
    const table = uniqueName('own_predictions').replace(/-/g, '_');
    const worker = await startTestWorker(env);
    try {
      const input = job(view, { target: table });
      const handle = await startBatchRun(env.client, worker.taskQueue, input);
      expect((await handle.result()).rowsScored).toBe(3_000);
      const { rows } = await env.pool.query(
        `SELECT count(*)::int AS n, count(DISTINCT entity_id)::int AS ids, min(job) AS job, min(model_name) AS model, count(passthrough)::int AS passthrough FROM ${table}`,
      );
      expect(rows[0]).toEqual({ n: 3_000, ids: 3_000, job: input.name, model, passthrough: 3_000 });
    } finally {
      await worker.stop();
    }
  });

  it.each([
    [{ targetColumns: { entity_id: 'id', prediction: 'yhat' } }, /target table \S+ does not exist/],
    [{ targetColumns: { entity_id: 'id', prediction: 'missing_column' } }, /lacks column\(s\) missing_column/],
  ])('refuses a mapping the target cannot take (%j), without retrying', async (extra, message) => {
    const { view } = await ridesTable(env.pool, { '2024-01': 200 });
    const table = uniqueName('t').replace(/-/g, '_');
    if (!String(message).includes('does not exist')) await env.pool.query(`CREATE TABLE ${table} (id bigint, yhat real)`);
    const worker = await startTestWorker(env);
    try {
      const err = await (await startBatchRun(env.client, worker.taskQueue, job(view, { target: table, ...extra }))).result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const cause = (err as WorkflowFailedError).cause as Error & { cause?: Error };
      expect(String(cause?.cause?.message ?? cause?.message)).toMatch(message);
    } finally {
      await worker.stop();
    }
  });

  it("a classifier's batch run stores each row's label, and its class probabilities when the job asks; a mapped target takes the label too", async () => {
    const fixture = (file: string) => fs.readFileSync(path.join(FIXTURES, file));
    const expected = JSON.parse(fixture('classifier_strings.expected.json').toString('utf8')) as {
      records: Array<{ x1: number; x2: number }>;
      classes: string[];
      labels: string[];
      probabilities: number[][];
    };
    const name = uniqueName('clf');
    await registerModel(env.store, { name, bytes: fixture('classifier_strings.onnx'), alias: 'production', maxBytes: 1 << 26 });
    const source = uniqueName('clf_rows').replace(/-/g, '_');
    await env.pool.query(`CREATE TABLE ${source} (id bigint PRIMARY KEY, t timestamp NOT NULL, x1 double precision, x2 double precision)`);
    // The fixture's records, 500 times over.
    await env.pool.query(
      `INSERT INTO ${source} SELECT g * 10 + r.i, timestamp '2024-01-10' + g * interval '1 minute', r.x1, r.x2
       FROM generate_series(0, 499) g, unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS r (x1, x2, i)`,
      [expected.records.map((r) => r.x1), expected.records.map((r) => r.x2)],
    );
    const mine = uniqueName('clf_scores').replace(/-/g, '_');
    await env.pool.query(`CREATE TABLE ${mine} (id bigint PRIMARY KEY, class_label text, class_position real)`);
    const worker = await startTestWorker(env);
    try {
      const base = { model: `${name}@production`, source: { table: source, idColumn: 'id', timestampColumn: 't' }, window: JANUARY, chunkSize: 1_000 };
      const lean = { ...base, name: uniqueName('clf-job'), probabilities: true };
      expect((await (await startBatchRun(env.client, worker.taskQueue, lean)).result()).rowsScored).toBe(3_000);
      const mapped = { ...base, name: uniqueName('clf-job'), target: mine, targetColumns: { id: 'id', label: 'class_label', prediction: 'class_position' } };
      expect((await (await startBatchRun(env.client, worker.taskQueue, mapped)).result()).rowsScored).toBe(3_000);
      const { rows } = await env.pool.query(
        `SELECT p.entity_id % 10 AS i, p.label, p.prediction, p.probabilities, m.class_label
         FROM predictions p JOIN ${mine} m ON m.id = p.entity_id WHERE p.job = $1 ORDER BY p.entity_id`,
        [lean.name],
      );
      expect(rows).toHaveLength(3_000);
      for (const r of rows) {
        const k = Number(r.i) - 1;
        expect(r.label).toBe(expected.labels[k]);
        expect(r.class_label).toBe(expected.labels[k]);
        expect(r.prediction).toBe(expected.classes.indexOf(expected.labels[k]));
        expect(r.probabilities).toHaveLength(expected.classes.length);
        r.probabilities.forEach((p: number, c: number) => expect(Math.abs(p - expected.probabilities[k][c])).toBeLessThan(1e-5));
      }
      // Without `probabilities: true`, the label only.
      const labelOnly = { ...base, name: uniqueName('clf-job') };
      expect((await (await startBatchRun(env.client, worker.taskQueue, labelOnly)).result()).rowsScored).toBe(3_000);
      const stored = await env.pool.query('SELECT count(label)::int AS labels, count(probabilities)::int AS probabilities FROM predictions WHERE job = $1', [labelOnly.name]);
      expect(stored.rows[0]).toEqual({ labels: 3_000, probabilities: 0 });
    } finally {
      await worker.stop();
    }
  });

  it("encodes a classifier's label and class probabilities for binary COPY", async () => {
    const { view } = await ridesTable(env.pool, { '2024-01': 300 });
    const client = await env.pool.connect();
    try {
      const probe = await client.query(`SELECT ride_id, lpep_pickup_datetime FROM ${view} LIMIT 0`);
      const batch = new ColumnBatch(planColumns(probe.fields, 'ride_id', 'lpep_pickup_datetime'), 128);
      const runKey = (
        await client.query(
          `INSERT INTO batch_runs (run_id, workflow_id, job, model_name, model_version, source, target, window_start, window_end, status)
           VALUES ($1, 'w', $1, 'classifier', 1, $2, 'predictions', $3, $4, 'succeeded') RETURNING run_key`,
          [uniqueName('run'), view, JANUARY.from, JANUARY.to],
        )
      ).rows[0].run_key;
      const source = { key: batch.column('ride_id'), time: batch.column('lpep_pickup_datetime'), actual: null, passthrough: [] };
      const classes = ['short', 'long'];
      const parts: Buffer[] = [LeanRows.header()];
      let writer: LeanRows | null = null;
      const expected = { n: 0, long: 0 };
      await copyColumns(client, `SELECT ride_id::int8, lpep_pickup_datetime FROM ${view}`, batch, async (rows) => {
        const predictions = Array.from({ length: rows.length }, (_, i) => (i % 5 === 4 ? null : i % 2));
        for (const p of predictions) if (p !== null) [expected.n, expected.long] = [expected.n + 1, expected.long + p];
        const labels = predictions.map((p) => (p === null ? null : classes[p]));
        const probabilities = new Float32Array(rows.length * 2).map((_, k) => (k % 2 === 0 ? 0.25 : 0.75));
        writer ??= new LeanRows(runKey, source, { label: true, probabilities: true });
        parts.push(writer.encode(rows, { predictions, classes, labels, probabilities }));
      });
      parts.push(LeanRows.trailer());
      const copy = client.query(copyFrom(`COPY batch_predictions (${writer!.columns.join(', ')}) FROM STDIN (FORMAT binary)`));
      copy.end(Buffer.concat(parts));
      await finished(copy);
      const { rows } = await client.query(
        `SELECT count(*)::int AS n, count(*) FILTER (WHERE label = 'long' AND prediction = 1)::int AS long, min(probabilities[2]) AS p2, max(array_length(probabilities, 1)) AS width
         FROM batch_predictions WHERE run_key = $1`,
        [runKey],
      );
      expect(rows[0]).toEqual({ ...expected, p2: 0.75, width: 2 });
      expect(expected.n).toBeGreaterThan(200);
    } finally {
      client.release();
    }
  });
});
