// A feature spec from what MLflow knows about a model, for imports without --spec: the
// signature's (or input example's) column names feed a single multi-column model input, and
// the input example's first row becomes the spec's example, which registration test-runs.
import { DTYPES } from '../registry/spec.ts';
import type { ModelMetadata } from '../registry/metadata.ts';
import type { MlflowSignature } from './mlmodel.ts';

export function deriveSpec(meta: ModelMetadata, signature: MlflowSignature | undefined, example: Record<string, unknown> | undefined): Record<string, unknown> {
  const named = signature?.inputs?.every((f) => f.name && f.type !== 'tensor') ? signature.inputs.map((f) => f.name as string) : undefined;
  const columns = named ?? (example ? Object.keys(example) : []);
  const spec: Record<string, unknown> = {};
  const only = meta.inputs.length === 1 ? meta.inputs[0] : undefined;
  // Inputs named like the columns are fed by name already (the default); so is a model MLflow describes no columns of.
  const fedByName = meta.inputs.every((i) => columns.includes(i.name));
  if (!fedByName && only && columns.length > 0 && (DTYPES as readonly string[]).includes(only.type)) {
    spec.inputs = [{ name: only.name, dtype: only.type, fields: columns }];
  }
  if (example) spec.example = example;
  return spec;
}
