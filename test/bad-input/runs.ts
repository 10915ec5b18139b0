// Seeds and counts for the bad-input suite. The seed is fixed so CI is reproducible; a
// seed set with fast-check's fc.configureGlobal({ seed }) (for example in a vitest setup
// file) or FC_SEED=<n> overrides it. A failing property prints its seed and path for replay.
import fc from 'fast-check';

const DEFAULT_SEED = 20_250_601;

export const SEED: number = fc.readConfigureGlobal().seed ?? (process.env.FC_SEED ? Number(process.env.FC_SEED) : DEFAULT_SEED);

/** fast-check parameters for one property: the suite's seed and how many inputs to try. */
export const runs = (numRuns: number): fc.Parameters<unknown> => ({ seed: SEED, numRuns, endOnFailure: true });

/** Inputs tried per category, printed at the end of each file for docs/reliability.md. */
export class Tally {
  private readonly counts = new Map<string, number>();

  add(category: string, n = 1): void {
    this.counts.set(category, (this.counts.get(category) ?? 0) + n);
  }

  get(category: string): number {
    return this.counts.get(category) ?? 0;
  }

  print(title: string): void {
    const lines = [...this.counts].map(([category, n]) => `  ${category.padEnd(48)} ${n}`);
    const total = [...this.counts.values()].reduce((a, b) => a + b, 0);
    process.stdout.write(`bad-input ${title} (fast-check seed ${SEED}):\n${lines.join('\n')}\n  ${'total'.padEnd(48)} ${total}\n`);
  }
}
