// How the command line starts: the bundle in dist/ only while it is newer than the sources,
// --version, and the exit codes of usage errors.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './cli-support.ts';

const run = (script: string, args: string[]) => runCli(args, { ...process.env, MLDEPLOY_LOG_LEVEL: 'warn' }, script, 60_000);

describe('bin/mldeploy.js picks the bundle or the sources', () => {
  // A package of its own: the real launcher, a "bundle" and "sources" that say which one ran.
  let root: string;
  const touch = (file: string, secondsAgo: number) => {
    const when = new Date(Date.now() - secondsAgo * 1000);
    fs.utimesSync(path.join(root, file), when, when);
  };
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-launcher-'));
    for (const dir of ['bin', 'dist', 'src/cli', 'activities', 'workflows']) fs.mkdirSync(path.join(root, dir), { recursive: true });
    fs.copyFileSync('bin/mldeploy.js', path.join(root, 'bin/mldeploy.js'));
    fs.writeFileSync(path.join(root, 'package.json'), '{"type":"module"}');
    fs.writeFileSync(path.join(root, 'dist/mldeploy.js'), "console.log('bundle');");
    fs.writeFileSync(path.join(root, 'src/cli/main.ts'), "const from: string = 'sources';\nconsole.log(from);");
    fs.symlinkSync(path.resolve('node_modules'), path.join(root, 'node_modules'));
    for (const file of ['package.json', 'src/cli/main.ts', 'src/cli', 'src', 'activities', 'workflows']) touch(file, 60);
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  it('runs the bundle while it is newer than every source', async () => {
    touch('dist/mldeploy.js', 10);
    expect((await run(path.join(root, 'bin/mldeploy.js'), [])).stdout.trim()).toBe('bundle');
  });

  it('runs the sources once one is newer than the bundle (an edit since the build)', async () => {
    touch('dist/mldeploy.js', 10);
    touch('src/cli/main.ts', 1);
    expect((await run(path.join(root, 'bin/mldeploy.js'), [])).stdout.trim()).toBe('sources');
  });

  it('runs the sources when a file was deleted since the build (its folder changed)', async () => {
    touch('src/cli/main.ts', 60);
    touch('dist/mldeploy.js', 10);
    touch('workflows', 1);
    expect((await run(path.join(root, 'bin/mldeploy.js'), [])).stdout.trim()).toBe('sources');
  });
});

describe('mldeploy --version and exit codes', () => {
  const version = (JSON.parse(fs.readFileSync('package.json', 'utf8')) as { version: string }).version;

  it('prints the package version', async () => {
    const result = await run('bin/mldeploy.js', ['--version']);
    expect(result).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it('documents the exit codes in --help', async () => {
    const result = await run('bin/mldeploy.js', ['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/Exit codes: 0 success, 1 error .*, 2 usage error/);
  });

  it.each([
    ['an unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['an unknown option', ['models', 'list', '--nope'], /unknown option '--nope'/],
    ['a missing argument', ['models', 'show'], /missing required argument 'ref'/],
    ['a missing required option', ['predict', 'trip-duration'], /required option '--data <json>' not specified/],
  ])('exits 2 on %s', async (_what, args, message) => {
    const result = await run('bin/mldeploy.js', args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });
});
