// `mldeploy models …` and `mldeploy predict`: the model registry from the command line.
import fs from 'node:fs';
import type { Command } from 'commander';
import { parseJsonOption, positiveInt, printJson, UsageError, withStack } from './context.ts';
import { printList, withOutputOptions, type OutputFlags } from './output.ts';
import { registerModel } from '../registry/register.ts';
import { ModelCache } from '../registry/runtime.ts';
import { MAX_VERSION } from '../registry/refs.ts';
import { DataPlane, outcomeOf } from '../inference/data-plane.ts';
import { importCommand } from './models-import.ts';
import { followCommand } from './models-follow.ts';
import type { ModelVersion } from '../registry/store.ts';
import { profileCommand, profileVersion, referenceSource } from './profile.ts';

function readFile(what: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function summary(v: ModelVersion) {
  return {
    name: v.name,
    version: v.version,
    aliases: v.aliases,
    sha256: v.sha256,
    sizeBytes: v.sizeBytes,
    inputs: v.metadata.inputs,
    outputs: v.metadata.outputs,
    metrics: v.metrics,
    createdAt: v.createdAt,
  };
}

export function modelsCommands(program: Command): void {
  const models = program.command('models').description('register, list and promote ONNX models');

  models
    .command('register <name> <file>')
    .description('validate an ONNX model and store it as a new immutable version')
    .option('--spec <spec.json>', 'feature spec (docs/model-spec.md); default: inputs fed from fields of the same name')
    .option('--alias <alias>', 'point this alias (for example production) at the new version')
    .option('--metrics <json>', 'metrics to record, as a JSON object of numbers')
    .option('--reference <file.csv|run:runId>', 'build its reference profile for drift monitoring from a CSV file or a batch run')
    .action(async (name: string, file: string, opts: { spec?: string; alias?: string; metrics?: string; reference?: string }) => {
      const bytes = readFile('model file', file);
      const spec = opts.spec ? parseJsonOption('--spec', readFile('spec', opts.spec).toString('utf8')) : undefined;
      const metrics = opts.metrics ? (parseJsonOption('--metrics', opts.metrics) as Record<string, number>) : undefined;
      const reference = opts.reference ? referenceSource(opts.reference) : undefined;
      await withStack({ temporal: false }, async (stack, store) => {
        const version = await registerModel(store, { name, bytes, spec, alias: opts.alias, metrics, maxBytes: stack.config.maxModelBytes });
        const profile = reference ? await profileVersion(stack, store, version, reference) : undefined;
        printJson({ ...summary(version), ...(profile ? { profile } : {}) });
      });
    });

  importCommand(models);
  followCommand(models);

  withOutputOptions(models.command('list').description('every registered version, with its aliases')).action(async (flags: OutputFlags) => {
    await withStack({ temporal: false }, async (_stack, store) => {
      const rows = (await store.list()).map((v) => ({
        ref: `${v.name}@${v.version}`,
        aliases: v.aliases.join(','),
        sha256: v.sha256.slice(0, 12),
        rmse: v.metrics.rmse ?? '',
        created: v.createdAt,
      }));
      printList(rows, flags, 'no models registered');
    });
  });

  models
    .command('delete <ref>')
    .description('delete one version (name@version); refused while an alias points at it, and for the latest version (its number is never handed out again)')
    .action(async (ref: string) => {
      await withStack({ temporal: false }, async (_stack, store) => printJson(summary(await store.delete(ref))));
    });

  models
    .command('show <ref>')
    .description('one version: metadata, spec, metrics (ref: name, name@alias or name@version)')
    .action(async (ref: string) => {
      await withStack({ temporal: false }, async (_stack, store) => {
        const v = await store.resolve(ref);
        printJson({ ...summary(v), spec: v.spec, ...(v.provenance ? { provenance: v.provenance } : {}) });
      });
    });

  models
    .command('promote <name> <version>')
    .description('point an alias at a version')
    .option('--alias <alias>', 'alias to move', 'production')
    .action(async (name: string, version: string, opts: { alias: string }) => {
      const number = positiveInt('<version>')(version);
      if (number > MAX_VERSION) throw new UsageError(`<version> must be at most ${MAX_VERSION}, got ${version}`);
      await withStack({ temporal: false }, async (_stack, store) => {
        printJson(summary(await store.promote(name, number, opts.alias)));
      });
    });

  profileCommand(models);

  program
    .command('predict <ref>')
    .description('score a JSON record or array of records and print the predictions')
    .requiredOption('--data <json>', 'a record or an array of records')
    .action(async (ref: string, opts: { data: string }) => {
      const data = parseJsonOption('--data', opts.data);
      const records = (Array.isArray(data) ? data : [data]) as Record<string, unknown>[];
      await withStack({ temporal: false }, async (stack, store) => {
        const cache = new ModelCache(store, stack.config.modelThreads);
        const plane = new DataPlane({ lane: 'cli', resolver: cache.resolver });
        const { model, result } = await plane.predict(ref, records);
        const { predictions, errors } = result;
        // A classifier adds each record's label and class probabilities (null where rejected), as /v1 does.
        const classes = result.classes && result.labels ? result.classes : undefined;
        const classified = classes
          ? {
              labels: result.labels,
              probabilities: predictions.map((p, i) => (p === null ? null : outcomeOf(result, i)!.classification!.probabilities)),
              classes,
            }
          : {};
        printJson({ model: model.name, version: model.version, predictions, ...classified, errors });
        await cache.release();
        if (errors.length > 0) process.exitCode = 1;
      });
    });
}
