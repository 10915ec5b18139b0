// `mldeploy data seed`: the example domain's synthetic rides.
import type { Command } from 'commander';
import { seedRides } from '../rides/seed.ts';
import { positiveInt, printJson, withStack } from './context.ts';

export function dataCommands(program: Command): void {
  const data = program.command('data').description('example data');
  data
    .command('seed')
    .description('fill the rides table with deterministic synthetic NYC green-taxi rides for one month (replacing that month)')
    .requiredOption('--rows <n>', 'number of rides', positiveInt('--rows'))
    .option('--month <YYYY-MM>', 'month of the pickups', '2024-01')
    .option('--seed <n>', 'random seed', positiveInt('--seed'), 1)
    .action(async (opts: { rows: number; month: string; seed: number }) => {
      await withStack({ temporal: false }, async (stack) => {
        const started = Date.now();
        const rows = await seedRides(stack.pool, opts);
        printJson({ table: 'rides', month: opts.month, rows, seconds: (Date.now() - started) / 1000 });
      });
    });
}
