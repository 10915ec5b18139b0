// `mldeploy models profile <ref>` and `models register --reference`: build a version's
// reference profile (docs/monitoring.md) from a table window, a CSV file or a batch run.
import fs from 'node:fs';
import type { Command } from 'commander';
import type { Stack } from '../stack/stack.ts';
import type { ModelStore, ModelVersion } from '../registry/store.ts';
import { ModelCache } from '../registry/runtime.ts';
import { buildProfile, type ProfileSource } from '../monitoring/build.ts';
import { saveProfile } from '../monitoring/store.ts';
import type { Profile } from '../monitoring/profile.ts';
import { printJson, UsageError, withStack } from './context.ts';
import { parseDate } from './dates.ts';

interface ProfileFlags {
  source?: string;
  from?: string;
  to?: string;
  timestampColumn?: string;
  actualColumn?: string;
  csv?: string;
  run?: string;
}

function sourceFromFlags(flags: ProfileFlags): ProfileSource {
  const given = [flags.source && '--source', flags.csv && '--csv', flags.run && '--run'].filter(Boolean);
  if (given.length !== 1)
    throw new UsageError(`give exactly one of --source <table> (with --from, --to), --csv <file> or --run <runId>${given.length ? `, not ${given.join(' and ')}` : ''}`);
  if (flags.csv) return { kind: 'csv', file: flags.csv, actualColumn: flags.actualColumn };
  if (flags.run) return { kind: 'run', runId: flags.run };
  if (!flags.from || !flags.to) throw new UsageError('--source needs --from and --to (the reference window, for example the training period)');
  const from = parseDate('--from', flags.from);
  const to = parseDate('--to', flags.to);
  if (from >= to) throw new UsageError(`--from (${flags.from}) must be before --to (${flags.to})`);
  return { kind: 'table', table: flags.source!, timestampColumn: flags.timestampColumn!, from: from.toISOString(), to: to.toISOString(), actualColumn: flags.actualColumn };
}

/** `--reference` at register: a CSV file, or run:<runId>. */
export function referenceSource(value: string): ProfileSource {
  if (value.startsWith('run:')) return { kind: 'run', runId: value.slice(4) };
  // Checked before the version is registered, so a typo does not leave a version without its profile.
  if (!fs.existsSync(value)) throw new UsageError(`--reference: cannot read CSV file ${value} (give a CSV file or run:<runId>)`);
  return { kind: 'csv', file: value };
}

/** Builds and stores the profile of one version; what the command prints. */
export async function profileVersion(stack: Stack, store: ModelStore, version: ModelVersion, source: ProfileSource) {
  const cache = new ModelCache(store, stack.config.modelThreads);
  try {
    const model = await cache.get(version);
    const profile: Profile = await buildProfile(stack.pool, model, source);
    await saveProfile(stack.pool, version, profile);
    return {
      model: `${version.name}@${version.version}`,
      source: profile.source,
      rows: profile.rows,
      features: profile.features.map((f) => ({ name: f.name, kind: f.kind, bins: f.counts.length, missing: f.missing })),
      bytes: Buffer.byteLength(JSON.stringify(profile)),
    };
  } finally {
    await cache.release();
  }
}

export function profileCommand(models: Command): void {
  models
    .command('profile <ref>')
    .description("build a version's reference profile for drift monitoring, from a table window, a CSV file or a batch run")
    .option('--source <table>', 'table or view holding the reference data (with --from, --to)')
    .option('--from <date>', 'start of the reference window (inclusive)')
    .option('--to <date>', 'end of the reference window (exclusive)')
    .option('--timestamp-column <column>', 'the column the window applies to', 'lpep_pickup_datetime')
    .option('--actual-column <column>', 'the actual value, to profile actuals too')
    .option('--csv <file>', 'a CSV file with a header row, instead of a table')
    .option('--run <runId>', 'the rows a previous batch run scored (run id or workflow id)')
    .action(async (ref: string, flags: ProfileFlags) => {
      const source = sourceFromFlags(flags);
      await withStack({ temporal: false }, async (stack, store) => printJson(await profileVersion(stack, store, await store.resolve(ref), source)));
    });
}
