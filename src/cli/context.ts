// Shared plumbing for CLI commands: open the stack a command needs, run it, close it, and
// turn any failure into one clear line on stderr and a non-zero exit.
import { loadConfig } from '../config.ts';
import { openStack, type Stack } from '../stack/stack.ts';
import { ModelStore } from '../registry/store.ts';
import type { Resources } from '../resources.ts';

export async function withStack<T>(needs: { temporal: boolean }, run: (stack: Stack, store: ModelStore) => Promise<T>): Promise<T> {
  const stack = await openStack(loadConfig(), needs);
  try {
    return await run(stack, new ModelStore(stack.pool));
  } finally {
    await stack.close();
  }
}

/** For commands that run a worker or read streams: the process's resources (models, one stream backend) on the stack. */
export async function withProcessResources<T>(needs: { temporal: boolean }, run: (resources: Resources) => Promise<T>): Promise<T> {
  // Loaded here, not up front: the resources bring the stream backends' clients.
  const { withResources } = await import('../resources.ts');
  return withResources(loadConfig(), needs, run);
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Parses a CLI argument as JSON, with an error that names the option. */
export function parseJsonOption(option: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${option} is not valid JSON: ${(err as Error).message}`);
  }
}

export class UsageError extends Error {
  override name = 'UsageError';
}

export function positiveInt(option: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`${option} must be a positive integer, got ${JSON.stringify(value)}`);
    return n;
  };
}
