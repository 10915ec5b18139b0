// Runs the command line as a user does, `node <script> …` in a child process, and returns its
// exit code and output whether it succeeds or not.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(args: string[], env: NodeJS.ProcessEnv, script = 'bin/mldeploy.js', timeout = 150_000): Promise<CliResult> {
  try {
    // A list can be large (dead letters of the whole test run hold the property suite's big payloads): above execFile's 1 MiB default.
    const { stdout, stderr } = await exec(process.execPath, [script, ...args], { env, timeout, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as CliResult;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
