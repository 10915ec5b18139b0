// A real MLflow tracking server for the MLflow tests: the pinned mlflow from PyPI is installed
// into the project's cache on first use (a virtualenv under .mldeploy/cache, as the Temporal
// CLI is installed), then `mlflow server` runs with a SQLite store and a proxied local
// artifact store on a free port. Later test files and runs reuse the install.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../src/stack/ports.ts';
import { ensurePythonTool } from './python-tool.ts';

const run = promisify(execFile);

export const MLFLOW_VERSION = '3.17.2';
/** What the server and the logging script need; pinned so every install is the same. */
const REQUIREMENTS = [`mlflow[auth]==${MLFLOW_VERSION}`, 'onnx==1.19.1', 'onnxruntime==1.22.1', 'scikit-learn==1.9.1', 'pandas==3.1.1', 'numpy==2.4.6', 'scipy==1.17.1'];
const LOG_SCRIPT = path.resolve('test/setup/mlflow-log.py');

/** Installs the pinned mlflow into the cache unless an earlier run did; returns the virtualenv. */
export function ensureMlflow(): Promise<string> {
  return ensurePythonTool(`mlflow-${MLFLOW_VERSION}`, REQUIREMENTS);
}

export interface RunningMlflow {
  url: string;
  /** The variables a client of this server needs (MLFLOW_TRACKING_URI and the admin's credentials). */
  clientEnv: Record<string, string>;
  /** Runs test/setup/mlflow-log.py's commands (each an argument list) in one Python process against this server; returns one result per command. */
  log(...commands: string[][]): Promise<Array<Record<string, unknown>>>;
  stop(): Promise<void>;
}

/** Starts `mlflow server`; with adminPassword, MLflow's basic-auth app guards it (user `admin`). */
export async function startMlflow(opts: { adminPassword?: string } = {}): Promise<RunningMlflow> {
  const venv = await ensureMlflow();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-mlflow-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = ['server', '--backend-store-uri', `sqlite:///${path.join(tmp, 'mlflow.db')}`, '--artifacts-destination', path.join(tmp, 'artifacts')];
  args.push('--host', '127.0.0.1', '--port', String(port), '--workers', '1');
  if (opts.adminPassword) args.push('--app-name', 'basic-auth');
  const serverEnv: NodeJS.ProcessEnv = { ...process.env, MLFLOW_FLASK_SERVER_SECRET_KEY: 'mldeploy-test' };
  if (opts.adminPassword) serverEnv.MLFLOW_AUTH_ADMIN_PASSWORD = opts.adminPassword;
  const output: string[] = [];
  const child: ChildProcess = spawn(path.join(venv, 'bin', 'mlflow'), args, { cwd: tmp, env: serverEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  const clientEnv: Record<string, string> = { MLFLOW_TRACKING_URI: url };
  if (opts.adminPassword) Object.assign(clientEnv, { MLFLOW_TRACKING_USERNAME: 'admin', MLFLOW_TRACKING_PASSWORD: opts.adminPassword });

  const stop = async () => {
    if (child.exitCode === null && child.pid) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(-child.pid, 'SIGTERM'); // the server and its uvicorn workers
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mlflow server exited (${child.exitCode}):\n${output.join('').slice(-2000)}`);
    const healthy = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (healthy) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`mlflow server did not answer within 180 s:\n${output.join('').slice(-2000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return {
    url,
    clientEnv,
    async log(...commands) {
      const args = commands.flatMap((c, i) => (i === 0 ? c : ['+', ...c]));
      const { stdout } = await run(path.join(venv, 'bin', 'python'), [LOG_SCRIPT, ...args], {
        env: { ...process.env, ...clientEnv, GIT_PYTHON_REFRESH: 'quiet' },
        timeout: 180_000,
      });
      return JSON.parse(stdout.trim().split('\n').pop() ?? '[]');
    },
    stop,
  };
}
