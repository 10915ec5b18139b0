// Shared set-up for benchmarks: a database and a Temporal server of their own (or the
// configured ones), and a model registered under a fresh name.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { createPool, type Pool } from '../src/db/pool.ts';
import { migrate } from '../src/db/migrate.ts';
import { startEmbeddedPostgres } from '../src/stack/postgres.ts';
import { startDevServer } from '../src/stack/temporal-server.ts';
import { freePort } from '../src/stack/ports.ts';
import { ModelStore } from '../src/registry/store.ts';
import { registerModel } from '../src/registry/register.ts';
import { MODELS_DIR } from '../src/demo.ts';
import { installTemporalLogging } from '../src/temporal-logging.ts';

export interface BenchStack {
  pool: Pool;
  store: ModelStore;
  client: Client;
  databaseUrl: string;
  temporalAddress: string;
  close(): Promise<void>;
}

export async function openBenchStack(): Promise<BenchStack> {
  installTemporalLogging();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-bench-'));
  fs.chmodSync(tmp, 0o755);
  const pg = process.env.DATABASE_URL ? undefined : await startEmbeddedPostgres(tmp);
  const temporal = process.env.TEMPORAL_ADDRESS
    ? undefined
    : await startDevServer({ dataDir: path.resolve('.mldeploy'), port: await freePort(), uiPort: 0, persistent: false });
  const databaseUrl = process.env.DATABASE_URL ?? pg!.url;
  const temporalAddress = process.env.TEMPORAL_ADDRESS ?? temporal!.address;
  const pool = createPool(databaseUrl, 20);
  await migrate(pool);
  const connection = await Connection.connect({ address: temporalAddress });
  return {
    pool,
    store: new ModelStore(pool),
    client: new Client({ connection }),
    databaseUrl,
    temporalAddress,
    async close() {
      await connection.close();
      await pool.end();
      await temporal?.stop();
      await pg?.stop();
      fs.rmSync(tmp, { recursive: true, force: true });
    },
  };
}

export async function registerBenchModel(store: ModelStore, example: string): Promise<string> {
  const name = `bench-${example}-${Date.now()}`;
  await registerModel(store, {
    name,
    bytes: fs.readFileSync(path.join(MODELS_DIR, `${example}.onnx`)),
    spec: JSON.parse(fs.readFileSync(path.join(MODELS_DIR, `${example}.spec.json`), 'utf8')),
    alias: 'production',
    maxBytes: 1 << 28,
  });
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
