// `mldeploy worker` child processes against the fault suite's stack, as an operator runs
// them: the CLI entry point, configured only through the environment.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { FaultStack } from './stack.ts';

export interface WorkerSpec {
  /** Shown in failures, e.g. "main" or "tip". */
  label: string;
  /** Extra CLI arguments, e.g. ['--consumers', 'tip'] or ['--no-consumers']. */
  args: string[];
}

export interface Deployment {
  taskQueue: string;
  routingFile: string;
  streamNamespace: string;
}

export interface WorkerProcess {
  label: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  /** Exit status of a process that ended without being asked to (null while it runs). */
  unexpectedExit(): string | null;
  /** The last few thousand characters the process wrote (stdout and stderr), for failure reports. */
  output(): string;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export async function spawnWorker(stack: FaultStack, deployment: Deployment, spec: WorkerSpec): Promise<WorkerProcess> {
  const dataDir = fs.mkdtempSync(path.join(stack.dir, `worker-${spec.label}-`));
  const child = spawn(process.execPath, ['bin/mldeploy.js', 'worker', ...spec.args], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: stack.temporalAddress,
      DATABASE_URL: stack.databaseUrl,
      MLDEPLOY_TASK_QUEUE: deployment.taskQueue,
      MLDEPLOY_ROUTING_FILE: deployment.routingFile,
      MLDEPLOY_STREAM_BACKEND: 'postgres',
      MLDEPLOY_STREAM_NAMESPACE: deployment.streamNamespace,
      MLDEPLOY_DATA_DIR: dataDir,
      MLDEPLOY_LOG_LEVEL: 'warn',
      // Several workers on one host: no fixed metrics ports.
      MLDEPLOY_WORKER_METRICS_PORT: '0',
      MLDEPLOY_SDK_METRICS_PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk).slice(-6000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let asked = false;
  let exitStatus: string | null = null;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code, signal) => {
      if (!asked) exitStatus = `worker ${spec.label} exited on its own (code ${code}, signal ${signal}):\n${output}`;
      resolve(code);
    }),
  );
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => /(worker|consumers) polling/.test(String(d)) && resolve());
    void exited.then((code) => reject(new Error(`worker ${spec.label} exited (${code}) before polling:\n${output}`)));
  });
  const signal = async (name: NodeJS.Signals) => {
    asked = true;
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
    await exited;
  };
  return {
    label: spec.label,
    child,
    exited,
    unexpectedExit: () => exitStatus,
    output: () => output,
    kill: () => signal('SIGKILL'),
    stop: () => signal('SIGTERM'),
  };
}
