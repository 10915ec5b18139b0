// Python tools the tests drive (MLflow, tritonclient, schemathesis): each pinned set of
// requirements is installed from PyPI into a virtualenv on first use and reused by later test
// files and runs. The virtualenvs live in a per-user cache shared by every clone on the machine
// (MLDEPLOY_TOOL_CACHE, else $XDG_CACHE_HOME/mldeploy/tools, else ~/.cache/mldeploy/tools), so
// a clean clone, as CI's, does not reinstall 1.4 GB (MLflow alone takes about 70 s). A marker
// file holds the requirements, so a changed pin installs afresh; a lock folder keeps two runs
// from installing the same tool at once.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);
const installing = new Map<string, Promise<string>>();

const toolCache = () => process.env.MLDEPLOY_TOOL_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'mldeploy', 'tools');

/** A lock older than the longest install is left over from a killed run. */
const STALE_LOCK_MS = 20 * 60_000;

/** Runs `work` holding the lock folder `lock` (mkdir is atomic), waiting while another run holds it. */
async function withLock<T>(lock: string, work: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > STALE_LOCK_MS) fs.rmSync(lock, { recursive: true, force: true });
      else await sleep(1000);
    }
  }
  try {
    return await work();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** The virtualenv holding `requirements` (installed now unless an earlier run did), named `<name>` in the cache. */
export function ensurePythonTool(name: string, requirements: readonly string[]): Promise<string> {
  let install = installing.get(name);
  if (!install) {
    install = (async () => {
      const dir = path.join(toolCache(), name);
      const marker = path.join(dir, 'mldeploy-installed.txt');
      const installed = () => fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === requirements.join('\n');
      if (installed()) return dir;
      fs.mkdirSync(path.dirname(dir), { recursive: true });
      return withLock(`${dir}.lock`, async () => {
        if (installed()) return dir; // another run installed it while this one waited
        fs.rmSync(dir, { recursive: true, force: true });
        await run('python3', ['-m', 'venv', dir], { timeout: 120_000 });
        await run(path.join(dir, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', ...requirements], { timeout: 900_000 });
        fs.writeFileSync(marker, requirements.join('\n'));
        return dir;
      });
    })();
    install.catch(() => installing.delete(name));
    installing.set(name, install);
  }
  return install;
}
