// Starts one real Temporal dev server and one real PostgreSQL for the whole test run:
// DATABASE_URL when it is set (the machine's server), otherwise an embedded PostgreSQL in a
// temporary folder. Tests read the addresses with inject().
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/stack/postgres.ts';
import { startDevServer, type RunningTemporal } from '../../src/stack/temporal-server.ts';
import { freePort } from '../../src/stack/ports.ts';
import { createPool } from '../../src/db/pool.ts';
import { migrate } from '../../src/db/migrate.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    databaseUrl: string;
    dataDir: string;
    /** The Temporal CLI the run uses, for tests that start mldeploy's own dev server. */
    temporalCli: string;
  }
}

let temporal: RunningTemporal | undefined;
let postgres: RunningPostgres | undefined;
let tmp: string | undefined;

export async function setup(project: TestProject) {
  // Tests spawn bin/mldeploy.js: bundle the sources as they are now, so it runs the fast build.
  // If bundling fails, bin/mldeploy.js finds the bundle older than the sources and runs them through tsx.
  try {
    execFileSync(process.execPath, ['scripts/build.js'], { stdio: 'inherit' });
  } catch {
    process.stderr.write('mldeploy build failed: the CLI runs from the sources (tsx) in this test run\n');
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-test-'));
  fs.chmodSync(tmp, 0o755); // the embedded server runs as the postgres user
  // The Temporal CLI cache is kept in the project's data folder, so runs after the first
  // one (and CI after .ci/run's first test) reuse the binary.
  const cacheRoot = path.resolve(process.env.MLDEPLOY_DATA_DIR ?? '.mldeploy');
  const [pg, server] = await Promise.all([
    process.env.DATABASE_URL ? Promise.resolve(undefined) : startEmbeddedPostgres(tmp),
    startDevServer({ dataDir: cacheRoot, cliPath: process.env.TEMPORAL_CLI_PATH, port: await freePort(), uiPort: 0, persistent: false }),
  ]);
  postgres = pg;
  temporal = server;
  const databaseUrl = process.env.DATABASE_URL ?? pg!.url;
  const pool = createPool(databaseUrl);
  await migrate(pool);
  await pool.end();
  project.provide('temporalAddress', server.address);
  project.provide('databaseUrl', databaseUrl);
  project.provide('dataDir', tmp);
  project.provide('temporalCli', server.binary ?? '');
}

export async function teardown() {
  await temporal?.stop();
  await postgres?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}
