// Bundles the command line into dist/ (npm's prepare step runs it during `npm ci`; `npm run
// build` after an edit), so a command starts without compiling TypeScript. Dependencies stay
// external; each top-level command's module is a chunk of its own, loaded when that command
// runs. bin/mldeploy.js runs the bundle only while it is newer than every source file. dist/
// sits at depth one, like src/, so the sources' relative paths to workflows/ and models/ hold.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const outdir = path.join(root, 'dist');
const ENTRY = path.join(outdir, 'mldeploy.js');
/** Chunks of earlier builds are kept this long: a command started before may still load them. */
const KEEP_OLD_MS = 15 * 60_000;

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  // A production install (--omit=dev) has no bundler: the image copies dist/ from its build stage.
  console.log('mldeploy build skipped: esbuild is not installed');
  process.exit(0);
}

const started = new Date();
const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: { mldeploy: 'src/cli/main.ts' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
  write: false,
});

// Other processes run the CLI while this builds: chunks first, the entry last, nothing removed
// that a running command may still import, and the entry dated when the build read the sources.
fs.mkdirSync(outdir, { recursive: true });
const files = result.outputFiles.sort((a, b) => (a.path === ENTRY) - (b.path === ENTRY));
for (const file of files) {
  const partial = `${file.path}.${process.pid}`;
  fs.writeFileSync(partial, file.contents);
  fs.renameSync(partial, file.path);
}
fs.utimesSync(ENTRY, started, started);
const current = new Set(files.map((f) => f.path));
for (const name of fs.readdirSync(outdir)) {
  const file = path.join(outdir, name);
  if (!current.has(file) && Date.now() - fs.statSync(file).mtimeMs > KEEP_OLD_MS) fs.rmSync(file, { force: true });
}
