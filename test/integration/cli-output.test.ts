// List commands print aligned tables or JSON; runs list/show, models delete and dead-letters
// list/replay, through `node bin/mldeploy.js` against the run's PostgreSQL and Temporal.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { runCli } from './cli-support.ts';
import { PostgresStreamBackend } from '../../src/streaming/pg-backend.ts';
import type { Decision, PredictionRecord } from '../../src/streaming/types.ts';

let env: TestEnv;
let dataDir: string;
const namespace = uniqueName('out').replace(/-/g, '_');
const taskQueue = uniqueName('tq-out');
beforeAll(async () => {
  env = await openTestEnv();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-cli-out-'));
  fs.chmodSync(dataDir, 0o755);
});
afterAll(async () => {
  await env.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const mldeploy = (args: string[]) =>
  runCli(args, {
    ...process.env,
    DATABASE_URL: env.databaseUrl,
    TEMPORAL_ADDRESS: env.temporalAddress,
    MLDEPLOY_DATA_DIR: dataDir,
    MLDEPLOY_LOG_LEVEL: 'warn',
    MLDEPLOY_STREAM_NAMESPACE: namespace,
    MLDEPLOY_TASK_QUEUE: taskQueue,
  });

/** The start of each column in a table's header; every row's cells start there too. */
function expectAligned(table: string, headers: string[]) {
  const [header, ...lines] = table.trimEnd().split('\n');
  expect(header.split(/\s{2,}/)).toEqual(headers);
  const starts = headers.map((h) => header.indexOf(h));
  for (const line of lines) for (const start of starts.slice(1)) expect(line[start - 1], `${line}\n${header}`).toBe(' ');
}

const register = (name: string, alias?: string) =>
  mldeploy(['models', 'register', name, 'models/trip-duration.onnx', '--spec', 'models/trip-duration.spec.json', ...(alias ? ['--alias', alias] : [])]);

describe('models list and delete', () => {
  const name = uniqueName('out-td');
  beforeAll(async () => {
    expect((await register(name)).code).toBe(0);
    expect((await register(name, 'production')).code).toBe(0);
    expect((await register(name)).code).toBe(0);
  });

  it('prints an aligned table without an index column, and the same rows as JSON with -o json or --json', async () => {
    const table = await mldeploy(['models', 'list']);
    expect(table.code).toBe(0);
    expect(table.stdout).not.toMatch(/\(index\)|[│┌└]/);
    expectAligned(table.stdout, ['REF', 'ALIASES', 'SHA256', 'RMSE', 'CREATED']);
    expect(table.stdout).toMatch(new RegExp(`^${name}@2 +production +[0-9a-f]{12} `, 'm'));
    for (const flag of [['-o', 'json'], ['--json']]) {
      const rows = JSON.parse((await mldeploy(['models', 'list', ...flag])).stdout) as Array<{ ref: string; aliases: string }>;
      expect(rows.filter((r) => r.ref.startsWith(`${name}@`))).toEqual([
        expect.objectContaining({ ref: `${name}@1`, aliases: '' }),
        expect.objectContaining({ ref: `${name}@2`, aliases: 'production' }),
        expect.objectContaining({ ref: `${name}@3`, aliases: '' }),
      ]);
    }
    const bad = await mldeploy(['models', 'list', '-o', 'yaml']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Allowed choices are table, json/);
  });

  it('refuses to delete a version an alias points at, or the latest; deletes another', async () => {
    const aliased = await mldeploy(['models', 'delete', `${name}@2`]);
    expect(aliased.code).toBe(1);
    expect(aliased.stderr).toMatch(new RegExp(`${name}@2 is what ${name}@production points at: promote another version first`));
    const latest = await mldeploy(['models', 'delete', `${name}@3`]);
    expect(latest.code).toBe(1);
    expect(latest.stderr).toMatch(/is the latest version/);
    const deleted = await mldeploy(['models', 'delete', `${name}@1`]);
    expect(deleted.code).toBe(0);
    expect(JSON.parse(deleted.stdout)).toMatchObject({ name, version: 1 });
    const { rows } = await env.pool.query('SELECT version FROM model_versions WHERE name = $1 ORDER BY version', [name]);
    expect(rows.map((r) => r.version)).toEqual([2, 3]);
    const again = await mldeploy(['models', 'delete', `${name}@1`]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/does not exist/);
  });
});

describe('runs list and show', () => {
  const job = uniqueName('out-job');
  const runIds = [randomUUID(), randomUUID()];
  beforeAll(async () => {
    for (const [i, runId] of runIds.entries()) {
      await env.pool.query(
        `INSERT INTO batch_runs (run_id, workflow_id, job, model_name, model_version, source, target, window_start, window_end, status, chunks, rows_read, rows_scored, started_at, finished_at, duration_ms)
         VALUES ($1, $2, $3, 'trip-duration', 1, 'rides', 'scores', $4, $5, $6, 2, 100, 100, now() - ($7 || ' minutes')::interval, now(), 1234)`,
        [runId, `batch-${job}-${i}`, job, `2024-0${i + 1}-01`, `2024-0${i + 2}-01`, i === 0 ? 'succeeded' : 'cancelled', String(10 - i)],
      );
    }
  });

  it('lists a job’s runs newest first, as a table or JSON, filtered by status', async () => {
    const table = await mldeploy(['runs', 'list', '--job', job]);
    expect(table.code).toBe(0);
    expectAligned(table.stdout, ['RUNID', 'JOB', 'MODEL', 'WINDOW', 'STATUS', 'ROWSSCORED', 'ROWSREJECTED', 'STARTED', 'DURATIONMS']);
    expect(
      table.stdout
        .trimEnd()
        .split('\n')
        .slice(1)
        .map((l) => l.split(/\s+/)[0]),
    ).toEqual([runIds[1], runIds[0]]);
    const json = JSON.parse((await mldeploy(['runs', 'list', '--job', job, '--status', 'succeeded', '--json'])).stdout);
    expect(json).toEqual([expect.objectContaining({ runId: runIds[0], status: 'succeeded', rowsScored: 100, model: 'trip-duration@1' })]);
    expect((await mldeploy(['runs', 'list', '--job', uniqueName('none')])).stdout).toBe('no batch runs\n');
  });

  it('shows one run by run id or by workflow id, and explains an unknown one', async () => {
    const byRun = JSON.parse((await mldeploy(['runs', 'show', runIds[0]])).stdout);
    expect(byRun).toMatchObject({ runId: runIds[0], job, status: 'succeeded', chunks: 2, chunksDone: 0, rowsScored: 100, durationMs: 1234 });
    const byWorkflow = JSON.parse((await mldeploy(['runs', 'show', `batch-${job}-1`])).stdout);
    expect(byWorkflow).toMatchObject({ runId: runIds[1], status: 'cancelled' });
    const unknown = await mldeploy(['runs', 'show', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no batch run "nope"/);
  });
});

describe('dead-letters list and replay', () => {
  const id = uniqueName('dl');
  // The list test's own event type: other test files dead-letter ride_started events (large ones too) in the same database.
  const listedType = `listed_${id.replace(/-/g, '_')}`;
  beforeAll(async () => {
    for (const type of ['ride_started', listedType]) {
      await env.pool.query(`INSERT INTO dead_letters (event_type, event_id, payload, reason, source) VALUES ($1, $2, $3, 'ride.trip_distance: expected number', 'workflow')`, [
        type,
        type === listedType ? `${id}-listed` : id,
        JSON.stringify({ ride_id: id, ride: { PULocationID: 130, DOLocationID: 205, trip_distance: 'far' } }),
      ]);
    }
  });

  it('lists dead letters as a table, and with their payloads as JSON', async () => {
    const table = await mldeploy(['dead-letters', 'list', '--type', listedType]);
    expect(table.code, table.stderr).toBe(0);
    expectAligned(table.stdout, ['TYPE', 'ID', 'SOURCE', 'CREATED', 'REASON']);
    expect(table.stdout).toMatch(new RegExp(`^${listedType} +${id}-listed +workflow `, 'm'));
    const listed = await mldeploy(['dead-letters', 'list', '--type', listedType, '-o', 'json']);
    expect(listed.code, listed.stderr).toBe(0);
    const json = JSON.parse(listed.stdout) as Array<{ id: string; payload: unknown }>;
    expect(json.find((l) => l.id === `${id}-listed`)?.payload).toMatchObject({ ride: { trip_distance: 'far' } });
  });

  it('replays a letter with a corrected payload as <id>:replay once, and removes the letter', async () => {
    const fixed = JSON.stringify({ ride_id: id, ride: { PULocationID: 130, DOLocationID: 205, trip_distance: 3.5 } });
    const replayed = await mldeploy(['dead-letters', 'replay', 'ride_started', id, '--data', fixed]);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(JSON.parse(replayed.stdout)).toMatchObject({ replayed: { type: 'ride_started', id }, eventId: `${id}:replay` });
    const { rows } = await env.pool.query('SELECT event FROM inbound_events WHERE log LIKE $1 AND event_id = $2', [`${namespace}%`, `${id}:replay`]);
    expect(rows).toHaveLength(1);
    expect(rows[0].event).toMatchObject({ payload: { ride: { trip_distance: 3.5 } } });
    expect((await env.pool.query('SELECT 1 FROM dead_letters WHERE event_id = $1', [id])).rowCount).toBe(0);
    const again = await mldeploy(['dead-letters', 'replay', 'ride_started', id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no dead letter ride_started\//);
  });
});

describe('streams tail', () => {
  const eventId = uniqueName('tail');
  beforeAll(async () => {
    const backend = new PostgresStreamBackend(env.pool, namespace);
    const time = new Date().toISOString();
    for (const consumer of ['duration', 'fare']) {
      const record: PredictionRecord = {
        id: `ride_started:${eventId}:${consumer}`,
        eventId,
        eventType: 'ride_started',
        consumer,
        model: { name: consumer, version: 3 },
        prediction: 12.5,
        time,
      };
      await backend.append('predictions', record.id, record);
    }
    const decision: Decision = {
      id: `ride_started:${eventId}`,
      eventId,
      eventType: 'ride_started',
      status: 'decided',
      action: 'review',
      reasons: ['expected fare above $150', 'long ride'],
      predictions: { duration: 12.5, fare: 12.5 },
      missing: [],
      time,
    };
    await backend.append('decisions', decision.id, decision);
    await backend.close();
  });

  it('prints records as an aligned table, and as JSON lines with -o json', async () => {
    const predictions = await mldeploy(['streams', 'tail', 'predictions']);
    expect(predictions.code, predictions.stderr).toBe(0);
    expectAligned(predictions.stdout, ['OFFSET', 'TIME', 'EVENT', 'CONSUMER', 'MODEL', 'PREDICTION']);
    expect(predictions.stdout).toMatch(new RegExp(`^\\d+ +\\S+ +ride_started:${eventId} +fare +fare@3 +12\\.5$`, 'm'));
    const decisions = await mldeploy(['streams', 'tail', 'decisions']);
    expectAligned(decisions.stdout, ['OFFSET', 'TIME', 'EVENT', 'STATUS', 'ACTION', 'REASONS']);
    expect(decisions.stdout).toMatch(new RegExp(`ride_started:${eventId} +decided +review +expected fare above \\$150; long ride$`, 'm'));
    const json = (await mldeploy(['streams', 'tail', 'decisions', '-o', 'json'])).stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(json.find((r) => r.id === `ride_started:${eventId}`)?.value).toMatchObject({ action: 'review', status: 'decided' });
    expect((await mldeploy(['streams', 'tail', 'decisions', '--json', '-o', 'table'])).code).toBe(1);
  });
});
