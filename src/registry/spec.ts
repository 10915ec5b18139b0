// The feature spec: how records become model inputs (docs/model-spec.md).
import { z } from 'zod';

import { DTYPES } from './dtypes.ts';

export { DTYPES, type Dtype } from './dtypes.ts';

const fieldName = z.string().min(1).max(128);

const Derived = z.discriminatedUnion('op', [
  z.object({ name: fieldName, op: z.literal('concat'), fields: z.array(fieldName).min(1), separator: z.string().max(16).default('_') }).strict(),
  z.object({ name: fieldName, op: z.literal('hour'), field: fieldName }).strict(),
  z.object({ name: fieldName, op: z.literal('weekday'), field: fieldName }).strict(),
]);

const Input = z.object({ name: z.string().min(1), dtype: z.enum(DTYPES), fields: z.array(fieldName).min(1).max(4096) }).strict();

const Output = z
  .object({
    name: z.string().min(1).optional(),
    index: z.number().int().min(0).default(0),
    clip: z.object({ min: z.number().optional(), max: z.number().optional() }).strict().optional(),
  })
  .strict();

const ClassLabelSchema = z.union([z.string().min(1).max(256), z.number().int().finite()]);

/** A classifier's outputs: its label tensor, its probabilities tensor and the class labels (the label's values, in the probabilities' column order). */
const Outputs = z
  .object({
    label: z.string().min(1).optional(),
    probabilities: z.string().min(1).optional(),
    classes: z
      .array(ClassLabelSchema)
      .min(1)
      .max(10_000)
      .refine((c) => new Set(c).size === c.length, 'class labels must be distinct')
      .optional(),
  })
  .strict();

export const FeatureSpecSchema = z
  .object({
    derived: z.array(Derived).max(256).default([]),
    inputs: z.array(Input).min(1).max(4096).optional(),
    output: Output.default({ index: 0 }),
    /** Classifiers: several outputs (docs/model-spec.md). Mutually exclusive with output.name. */
    outputs: Outputs.optional(),
    example: z.record(z.string(), z.unknown()).optional(),
    metrics: z.record(z.string(), z.number()).optional(),
  })
  .strict();

export type FeatureSpec = z.infer<typeof FeatureSpecSchema>;
export type DerivedFeature = z.infer<typeof Derived>;
export type InputSpec = z.infer<typeof Input>;
/** A class label: what a classifier's label output holds (int64 or string tensors). */
export type ClassLabel = z.infer<typeof ClassLabelSchema>;

/** A spec with every default filled in against one model's metadata. */
export interface ResolvedSpec {
  derived: DerivedFeature[];
  inputs: InputSpec[];
  /** The one output read into `predictions`; for a classifier, its label output. */
  output: { name: string; index: number; clip?: { min?: number; max?: number } };
  /** Set for classifiers (named by `outputs`, or recognised from the model's outputs). */
  classifier?: { label: string; probabilities: string; classes?: ClassLabel[] };
  example?: Record<string, unknown>;
  metrics?: Record<string, number>;
}

export function parseSpec(raw: unknown): FeatureSpec {
  const parsed = FeatureSpecSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(spec)'}: ${i.message}`);
    throw new SpecError(`invalid feature spec: ${problems.join('; ')}`);
  }
  return parsed.data;
}

export class SpecError extends Error {
  override name = 'SpecError';
}
