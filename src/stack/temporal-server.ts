// The local Temporal dev server: `temporal server start-dev` with a persistent SQLite file,
// the Web UI and mldeploy's search attributes.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { ALL_SEARCH_ATTRIBUTES, CLI_TYPE_NAMES } from '../../workflows/search-attributes.ts';
import { findTemporalCli } from './temporal-cli.ts';
import { isPortOpen, waitFor } from './ports.ts';
import { log } from '../log.ts';

export interface RunningTemporal {
  address: string;
  /** Web UI base URL, or undefined when headless. */
  uiUrl?: string;
  /** The CLI binary that runs it (undefined when the SDK downloaded its own). */
  binary?: string;
  /** The server's process id, when mldeploy spawned it (benchmarks read its CPU time). */
  pid?: number;
  stop(): Promise<void>;
}

export interface DevServerOptions {
  dataDir: string;
  cliPath?: string;
  port: number;
  /** 0 runs headless. */
  uiPort: number;
  /** false keeps history in memory (tests). */
  persistent?: boolean;
}

/**
 * Write-ahead logging, synced at checkpoints rather than at every commit. SQLite's defaults
 * (rollback journal, sync on every commit) cost the server 35–40 ms of CPU per streaming event
 * and capped `mldeploy dev` near 20 events/s; with these it is ~21 ms and 40 events/s holds
 * (docs/benchmarks.md). A killed server loses nothing committed; only an OS crash or power
 * loss can roll back the last transactions, which a local dev server can afford.
 */
const SQLITE_PRAGMAS = ['--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal'];

export function searchAttributeArgs(): string[] {
  return ALL_SEARCH_ATTRIBUTES.flatMap((key) => ['--search-attribute', `${key.name}=${CLI_TYPE_NAMES[key.type]}`]);
}

export async function startDevServer(opts: DevServerOptions): Promise<RunningTemporal> {
  if (await isPortOpen(opts.port)) {
    throw new Error(
      `port ${opts.port} is taken, so mldeploy cannot start its Temporal dev server there. ` +
        `Set MLDEPLOY_TEMPORAL_PORT to a free port, or TEMPORAL_ADDRESS to use the server that is running.`,
    );
  }
  if (opts.uiPort > 0 && (await isPortOpen(opts.uiPort))) {
    throw new Error(
      `port ${opts.uiPort} is taken, so mldeploy cannot serve the Temporal Web UI there. ` +
        `Set MLDEPLOY_UI_PORT to a free port (0 turns the UI off), or TEMPORAL_ADDRESS to use the server that is running.`,
    );
  }
  const binary = await findTemporalCli({ cliPath: opts.cliPath, dataDir: opts.dataDir });
  if (!binary) return startWithSdkDownload(opts);

  fs.mkdirSync(opts.dataDir, { recursive: true });
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(opts.port), '--log-level', 'error'];
  if (opts.persistent !== false) args.push('--db-filename', path.join(opts.dataDir, 'temporal.db'), ...SQLITE_PRAGMAS);
  if (opts.uiPort > 0) args.push('--ui-port', String(opts.uiPort));
  else args.push('--headless');
  args.push(...searchAttributeArgs());

  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const address = `127.0.0.1:${opts.port}`;
  try {
    await waitFor(
      'the Temporal dev server',
      async () => {
        if (child.exitCode !== null) throw new Error(`temporal server exited (${child.exitCode}): ${stderr}`);
        return (await isPortOpen(opts.port)) && (await canConnect(address));
      },
      60_000,
    );
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  log.debug({ address, binary }, 'temporal dev server started');
  return {
    address,
    uiUrl: opts.uiPort > 0 ? `http://localhost:${opts.uiPort}` : undefined,
    binary,
    pid: child.pid,
    stop: () => stopChild(child),
  };
}

async function canConnect(address: string): Promise<boolean> {
  try {
    const connection = await Connection.connect({ address, connectTimeout: 1000 });
    try {
      await connection.workflowService.getSystemInfo({});
      return true;
    } finally {
      await connection.close();
    }
  } catch {
    return false;
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Last resort: the SDK downloads the CLI itself (needs access to temporal.download). */
async function startWithSdkDownload(opts: DevServerOptions): Promise<RunningTemporal> {
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  try {
    const env = await TestWorkflowEnvironment.createLocal({
      server: {
        ip: '127.0.0.1',
        port: opts.port,
        ui: opts.uiPort > 0,
        uiPort: opts.uiPort > 0 ? opts.uiPort : undefined,
        dbFilename: opts.persistent !== false ? path.join(opts.dataDir, 'temporal.db') : undefined,
        searchAttributes: ALL_SEARCH_ATTRIBUTES,
      },
    });
    return {
      address: env.address,
      uiUrl: opts.uiPort > 0 ? `http://localhost:${opts.uiPort}` : undefined,
      stop: () => env.teardown(),
    };
  } catch (err) {
    const { INSTALL_HINT } = await import('./temporal-cli.ts');
    throw new Error(`no Temporal CLI was found and the SDK could not download one (${(err as Error).message}).\n${INSTALL_HINT}`);
  }
}
