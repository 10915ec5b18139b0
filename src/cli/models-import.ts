// `mldeploy models import <name> <uri>`: a model from MLflow (docs/models.md).
import fs from 'node:fs';
import type { Command } from 'commander';
import { parseJsonOption, printJson, UsageError, withStack } from './context.ts';
import { importModel } from '../mlflow/import.ts';

export function importCommand(models: Command): void {
  models
    .command('import <name> <uri>')
    .description('import an MLflow model (models:/<name>@<alias>, models:/<name>/<version>, runs:/<run-id>/<path> or a local MLflow model directory)')
    .option('--alias <alias>', 'point this alias (for example production) at the imported version')
    .option('--spec <spec.json>', 'feature spec (docs/model-spec.md); default: derived from the MLflow signature and input example')
    .action(async (name: string, uri: string, opts: { alias?: string; spec?: string }) => {
      let spec: unknown;
      if (opts.spec) {
        let text: string;
        try {
          text = fs.readFileSync(opts.spec, 'utf8');
        } catch (err) {
          throw new UsageError(`cannot read spec ${opts.spec}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        spec = parseJsonOption('--spec', text);
      }
      await withStack({ temporal: false }, async (stack, store) => {
        const { version, created } = await importModel(store, { name, uri, alias: opts.alias, spec, maxBytes: stack.config.maxModelBytes, mlflow: stack.config.mlflow });
        printJson({ name: version.name, version: version.version, created, aliases: version.aliases, sha256: version.sha256, provenance: version.provenance });
      });
    });
}
