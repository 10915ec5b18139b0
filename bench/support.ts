// Shared set-up for benchmarks: a database and a Temporal server of their own, or the
// configured ones (loadConfig: DATABASE_URL; TEMPORAL_ADDRESS or a profile, with its TLS and
// API key), and a model registered under a fresh name.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../src/config.ts';
import { createPool, type Pool } from '../src/db/pool.ts';
import { migrate } from '../src/db/migrate.ts';
import { startEmbeddedPostgres } from '../src/stack/postgres.ts';
import { externalTemporal } from '../src/stack/stack.ts';
import { startDevServer } from '../src/stack/temporal-server.ts';
import { freePort } from '../src/stack/ports.ts';
import { ModelStore } from '../src/registry/store.ts';
import { registerModel } from '../src/registry/register.ts';
import { readExampleModel, type ExampleModel } from '../src/demo.ts';
import { installTemporalLogging } from '../src/temporal-logging.ts';

export interface BenchStack {
  pool: Pool;
  store: ModelStore;
  client: Client;
  databaseUrl: string;
  /** The environment a child mldeploy process needs to use this stack (on top of this process's own). */
  childEnv: Record<string, string>;
  close(): Promise<void>;
}

export async function openBenchStack(): Promise<BenchStack> {
  installTemporalLogging();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-bench-'));
  fs.chmodSync(tmp, 0o755);
  const config = loadConfig();
  const pg = config.databaseUrl ? undefined : await startEmbeddedPostgres(tmp);
  const temporal = config.temporal.external
    ? undefined
    : await startDevServer({ dataDir: config.dataDir, cliPath: config.temporal.cliPath, port: await freePort(), uiPort: 0, persistent: false });
  const databaseUrl = config.databaseUrl ?? pg!.url;
  const target = temporal ? { connectionOptions: { address: temporal.address }, namespace: 'default' } : externalTemporal();
  const pool = createPool(databaseUrl, 20);
  await migrate(pool);
  const connection = await Connection.connect(target.connectionOptions as Parameters<typeof Connection.connect>[0]);
  return {
    pool,
    store: new ModelStore(pool),
    client: new Client({ connection, namespace: target.namespace }),
    databaseUrl,
    // A configured cluster reaches the child through this process's environment (TLS, API key, profile).
    childEnv: { DATABASE_URL: databaseUrl, ...(temporal ? { TEMPORAL_ADDRESS: temporal.address } : {}) },
    async close() {
      await connection.close();
      await pool.end();
      await temporal?.stop();
      await pg?.stop();
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

export async function registerBenchModel(store: ModelStore, example: ExampleModel): Promise<string> {
  const name = `bench-${example}-${Date.now()}`;
  await registerModel(store, { name, ...readExampleModel(example), alias: 'production', maxBytes: 1 << 28 });
  return name;
}

/** Peak resident memory of a process so far (VmHWM), in MiB. */
export function peakRssMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

/** `mldeploy worker` in a child process, resolved once it polls. */
export async function spawnWorker(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['bin/mldeploy.js', 'worker'], { env: { ...process.env, MLDEPLOY_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => String(d).includes('worker polling') && resolve());
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
  });
  return child;
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  await new Promise((resolve) => {
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
}

export function parseFlag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const value = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}
