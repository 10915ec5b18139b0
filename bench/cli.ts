// CLI start-up: wall time of `mldeploy --help`, `--version` and `predict` (one record, a
// registered model) from the bundle in dist/, beside a floor measured in the same run (`node -e 0`,
// a Node start that does nothing) and the same commands through tsx (the sources, as before
// the bundle). Medians of --runs runs each (default 15). Usage: npm run bench:cli [-- --runs N]
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createPool } from '../src/db/pool.ts';
import { migrate } from '../src/db/migrate.ts';
import { startEmbeddedPostgres } from '../src/stack/postgres.ts';
import { loadConfig } from '../src/config.ts';
import { ModelStore } from '../src/registry/store.ts';
import { registerBenchModel } from './support.ts';

const runsFlag = process.argv.indexOf('--runs');
const RUNS = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 15;

execFileSync(process.execPath, ['scripts/build.js'], { stdio: 'inherit' });

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-bench-cli-'));
fs.chmodSync(tmp, 0o755);
const config = loadConfig();
const pg = config.databaseUrl ? undefined : await startEmbeddedPostgres(tmp);
const databaseUrl = config.databaseUrl ?? pg!.url;
const pool = createPool(databaseUrl, 2);
await migrate(pool);
const model = await registerBenchModel(new ModelStore(pool), 'trip-duration');
await pool.end();

const env = { ...process.env, DATABASE_URL: databaseUrl, MLDEPLOY_DATA_DIR: tmp, MLDEPLOY_LOG_LEVEL: 'warn' };
const predict = ['predict', model, '--data', '{"PULocationID":10,"DOLocationID":50,"trip_distance":40}'];

/** Median wall time of a command, in ms; every run must succeed. */
function median(args: string[]): number {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = process.hrtime.bigint();
    const run = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (run.status !== 0) throw new Error(`${args.join(' ')} exited ${run.status}: ${run.stderr}`);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const floor = median(['-e', '0']);
const rows: Array<[string, number, number]> = [];
for (const [label, args] of [
  ['--help', ['--help']],
  ['--version', ['--version']],
  ['predict', predict],
] as const) {
  rows.push([label, median(['bin/mldeploy.js', ...args]), median(['--import', 'tsx', 'src/cli/main.ts', ...args])]);
}

console.log(`CLI start-up, median of ${RUNS} runs (ms); floor: node -e 0 = ${floor.toFixed(0)} ms`);
console.log('command     bundle  ×floor    tsx  ×floor  tsx/bundle');
for (const [label, bundle, tsx] of rows) {
  console.log(
    `${label.padEnd(10)} ${bundle.toFixed(0).padStart(7)} ${(bundle / floor).toFixed(1).padStart(7)} ${tsx.toFixed(0).padStart(6)} ${(tsx / floor).toFixed(1).padStart(7)} ${(tsx / bundle).toFixed(1).padStart(11)}`,
  );
}

await pg?.stop();
fs.rmSync(tmp, { recursive: true, force: true });
