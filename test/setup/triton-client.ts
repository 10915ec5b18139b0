// The off-the-shelf Open Inference Protocol clients for the v2 tests: the pinned
// tritonclient[http,grpc] from PyPI, installed into the project's cache on first use (a
// virtualenv under .mldeploy/cache, as the Temporal CLI and MLflow are) and reused by later
// test files and runs. test/setup/triton-call.py makes the calls with the client's defaults.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ensurePythonTool } from './python-tool.ts';

export const TRITONCLIENT_VERSION = '2.73.0';
const REQUIREMENTS = [`tritonclient[http,grpc]==${TRITONCLIENT_VERSION}`, 'numpy==2.4.6'];
const CALL_SCRIPT = path.resolve('test/setup/triton-call.py');

/** Installs the pinned client into the cache unless an earlier run did; returns the virtualenv. */
export function ensureTritonClient(): Promise<string> {
  return ensurePythonTool(`tritonclient-${TRITONCLIENT_VERSION}`, REQUIREMENTS);
}

export interface TritonTensor {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
}

export interface TritonCall {
  protocol: 'http' | 'grpc';
  /** host:port, as tritonclient takes it. */
  url: string;
  model: string;
  version?: string;
  token?: string;
  /** The request id (the prediction log's request_id). */
  id?: string;
  /** The repository extension's calls, in order: ['index'], ['load', model, config?], ['unload', model], ['model_ready', model], ['server_ready']. */
  ops?: Array<[string, ...string[]]>;
  /** With inputs: infer (outputs selects outputs); without: live, ready, server and model metadata. */
  inputs?: TritonTensor[];
  outputs?: string[];
}

export type TritonAnswer =
  | { outputs: Record<string, TritonTensor>; sent_binary?: boolean; binary_outputs?: string[] }
  | { live: boolean; ready: boolean; model_ready: boolean; server: unknown; model: unknown }
  | { error: string; status?: string }
  | { answers: Array<Record<string, unknown>> };

/** Runs one call through the pinned tritonclient with its defaults; a client-side exception comes back as { error }. */
export async function tritonCall(call: TritonCall): Promise<TritonAnswer> {
  const venv = await ensureTritonClient();
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(venv, 'bin', 'python'), [CALL_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`triton-call.py exited ${code}: ${err.slice(-2000)}`));
      resolve(JSON.parse(out) as TritonAnswer);
    });
    child.stdin.end(JSON.stringify(call));
  });
}
