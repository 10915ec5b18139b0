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
    const { stdout, stderr } = await exec(process.execPath, [script, ...args], { env, timeout });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as CliResult;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
