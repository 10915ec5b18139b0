// Python tools the tests drive (MLflow, tritonclient, schemathesis): each pinned set of
// requirements is installed from PyPI into a virtualenv under the project's cache on first
// use, as the Temporal CLI is, and reused by later test files and runs. A marker file holds
// the requirements, so a changed pin installs afresh.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const installing = new Map<string, Promise<string>>();

/** The virtualenv holding `requirements` (installed now unless an earlier run did), named `<name>` in the cache. */
export function ensurePythonTool(name: string, requirements: readonly string[]): Promise<string> {
  let install = installing.get(name);
  if (!install) {
    install = (async () => {
      const dir = path.join(path.resolve(process.env.MLDEPLOY_DATA_DIR ?? '.mldeploy'), 'cache', name);
      const marker = path.join(dir, 'mldeploy-installed.txt');
      if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === requirements.join('\n')) return dir;
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(path.dirname(dir), { recursive: true });
      await run('python3', ['-m', 'venv', dir], { timeout: 120_000 });
      await run(path.join(dir, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', ...requirements], { timeout: 900_000 });
      fs.writeFileSync(marker, requirements.join('\n'));
      return dir;
    })();
    install.catch(() => installing.delete(name));
    installing.set(name, install);
  }
  return install;
}
