#!/usr/bin/env node
// Runs the bundle in dist/ (built by `npm ci`'s prepare step, or `npm run build`) while it is
// newer than every source file; otherwise the TypeScript sources through tsx (a dev
// dependency), so an edit is never shadowed by a stale build.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';

// V8 lets the old generation grow to several times its live size between full collections.
// Batch scoring promotes a steady stream of short-lived rows, so the heap (and the peak RSS)
// then grows with the table instead of staying flat; a 1.5x growth factor keeps it near the
// live size at no measurable cost in throughput (docs/benchmarks.md).
v8.setFlagsFromString('--heap-growing-percent=50');

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const BUNDLE = path.join(root, 'dist', 'mldeploy.js');
const SOURCES = ['src', 'activities', 'workflows', 'package.json'];

/** The latest change under a path: files and folders (a deleted file changes its folder). */
function newest(file) {
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (!stat) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = stat.mtimeMs;
  for (const name of fs.readdirSync(file)) latest = Math.max(latest, newest(path.join(file, name)));
  return latest;
}

const built = fs.statSync(BUNDLE, { throwIfNoEntry: false })?.mtimeMs;
if (built !== undefined && SOURCES.every((source) => newest(path.join(root, source)) <= built)) {
  await import(BUNDLE);
} else {
  let tsx;
  try {
    tsx = await import('tsx/esm/api');
  } catch {
    process.stderr.write('error: dist/ is missing or older than the sources, and tsx is not installed to run them: run `npm run build`\n');
    process.exit(1);
  }
  tsx.register();
  await import('../src/cli/main.ts');
}
