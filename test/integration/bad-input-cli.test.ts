// Bad-input suite, the CLI as a user runs it: malicious and malformed arguments give one
// clear `error: ...` line, exit code 1 and no stack trace, and nothing is created or dropped.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestEnv, uniqueName, type TestEnv } from '../helpers.ts';
import { Tally } from '../bad-input/runs.ts';

const exec = promisify(execFile);
const tally = new Tally();
const INJECTION = 'x"; DROP TABLE rides; --';

let env: TestEnv;
beforeAll(async () => {
  env = await openTestEnv();
});
afterAll(async () => {
  tally.print('CLI invocations');
  await env.close();
});

async function mldeploy(args: string[]) {
  tally.add('node bin/mldeploy.js invocations');
  try {
    const { stdout, stderr } = await exec(process.execPath, ['bin/mldeploy.js', ...args], {
      env: { ...process.env, DATABASE_URL: env.databaseUrl, TEMPORAL_ADDRESS: env.temporalAddress, MLDEPLOY_LOG_LEVEL: 'warn' },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const model = uniqueName('cli-bad');
const score = (over: Record<string, string>) => {
  const flags: Record<string, string> = {
    '--model': `${model}@production`,
    '--source': 'ride_durations',
    '--id-column': 'ride_id',
    '--timestamp-column': 'lpep_pickup_datetime',
    '--from': '2024-01',
    '--to': '2024-02',
    ...over,
  };
  return ['score', ...Object.entries(flags).flat(), '--detach'];
};

const CASES: Array<[string, string[], RegExp]> = [
  ['an injected --from', score({ '--from': INJECTION }), /--from must be a date/],
  ['a non-ISO --to', score({ '--to': '1' }), /--to must be a date/],
  ['a rolled-over day', score({ '--from': '2024-02-30' }), /--from must be a date/],
  ['a window backwards', score({ '--from': '2024-03', '--to': '2024-02' }), /--from must be before --to/],
  ['an injected --source', score({ '--source': INJECTION }), /source\.table: must be a table name/],
  ['a --source with a semicolon', score({ '--source': 'rides;' }), /source\.table/],
  ['a --target with a space', score({ '--target': 'a b' }), /target: must be a table name/],
  ['an injected --id-column', score({ '--id-column': INJECTION }), /source\.idColumn: must be an SQL identifier/],
  ['a unicode --timestamp-column', score({ '--timestamp-column': 'zeït' }), /source\.timestampColumn/],
  ['a very long --passthrough', score({ '--passthrough': `a,${'b'.repeat(5_000)}` }), /source\.passthrough\.1/],
  ['a three-part table', score({ '--source': 'a.b.c' }), /source\.table/],
  ['a bad --chunk-size', score({ '--chunk-size': '1e3' }), /--chunk-size must be a positive integer/],
  ['an injected model reference', ['predict', INJECTION, '--data', '{}'], /invalid model name/],
  ['a model version 0', ['predict', `${model}@0`, '--data', '{}'], /invalid version/],
  ['an unknown model', ['predict', `${model}@production`, '--data', '{}'], /does not exist/],
  ['bad JSON data', ['predict', model, '--data', '{"PULocationID": NaN}'], /--data is not valid JSON/],
  ['an injected stream name', ['streams', 'tail', INJECTION], /no stream named/],
  ['an injected --after', ['streams', 'tail', 'decisions', '--after', '1; DROP TABLE rides'], /--after must be a non-negative integer/],
  ['an injected alias', ['models', 'promote', model, '1', '--alias', INJECTION], /invalid alias/],
  ['an injected month', ['data', 'seed', '--rows', '10', '--month', INJECTION], /month/],
];

describe('CLI bad arguments', () => {
  it.each(CASES)('rejects %s with one clear error line and exit code 1', async (_what, args, message) => {
    const result = await mldeploy(args);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/^error: /m);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('left the rides table and the registry as they were', async () => {
    const { rows } = await env.pool.query("SELECT to_regclass('rides') IS NOT NULL AS rides, (SELECT count(*)::int FROM model_versions WHERE name = $1) AS versions", [model]);
    expect(rows[0]).toEqual({ rides: true, versions: 0 });
  });
});
