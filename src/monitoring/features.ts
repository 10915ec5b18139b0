// Which values monitoring profiles: every model input field after the spec's derived
// features (PU_DO, not PULocationID and DOLocationID, for trip-duration), read from a record
// exactly as the feature mapper would. String and bool inputs are categorical.
import type { LoadedModel } from '../registry/runtime.ts';
import type { FeatureRecord } from '../registry/features.ts';

export type FeatureKind = 'numeric' | 'categorical';

export interface MonitoredFeature {
  name: string;
  kind: FeatureKind;
}

type Slot = { derived: false; name: string } | { derived: true; index: number };

export class FeatureReader {
  readonly features: MonitoredFeature[] = [];
  private readonly slots: Slot[] = [];
  private readonly hasDerived: boolean;
  private readonly derived: unknown[] = [];

  constructor(private readonly model: LoadedModel) {
    const derivedIndex = new Map(model.spec.derived.map((d, index) => [d.name, index]));
    this.hasDerived = derivedIndex.size > 0;
    const seen = new Set<string>();
    for (const input of model.spec.inputs) {
      for (const name of input.fields) {
        if (seen.has(name)) continue;
        seen.add(name);
        this.features.push({ name, kind: input.dtype === 'string' || input.dtype === 'bool' ? 'categorical' : 'numeric' });
        const index = derivedIndex.get(name);
        this.slots.push(index === undefined ? { derived: false, name } : { derived: true, index });
      }
    }
  }

  /** One record's feature values, in the order of `features` (undefined where missing). */
  read(record: FeatureRecord, out: unknown[]): void {
    const derived = this.hasDerived ? this.model.mapper.derive(record, this.derived) : undefined;
    for (let f = 0; f < this.slots.length; f++) {
      const slot = this.slots[f];
      out[f] = slot.derived ? derived![slot.index] : record[slot.name];
    }
  }
}

/** A numeric value, or NaN when it is missing or not a number (counted as missing). */
export function numericValue(value: unknown): number {
  if (typeof value === 'number') return Number.isFinite(value) ? value : NaN;
  if (typeof value === 'string' && value.trim() !== '') return Number(value);
  if (typeof value === 'boolean') return value ? 1 : 0;
  return NaN;
}

/** A category, or undefined when the value is missing. */
export function categoryValue(value: unknown): string | undefined {
  return value === null || value === undefined ? undefined : String(value);
}
