// `mldeploy emit`: produce an event for the fan-out, optionally waiting for its decision.
import type { Command } from 'commander';
import { parseJsonOption, printJson, withProcessResources } from './context.ts';
import { ingressFor } from '../streaming/ingress.ts';

export function emitCommand(program: Command): void {
  program
    .command('emit <type>')
    .description('emit an event (e.g. ride_started) to the fan-out; prints where it went (its workflow, or its partition and offset in batched mode), or the decision with --wait')
    .requiredOption('--data <json>', 'the event payload, a JSON object, e.g. \'{"ride": {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}}\'')
    .option('--id <id>', 'event id (default: a new UUID); emitting the same id again processes it once')
    .option('--wait', 'wait for the decision (up to MLDEPLOY_EVENT_WAIT_MS)')
    .option('--callback-url <url>', 'POST the decision to this URL once it exists')
    .action(async (type: string, opts: { data: string; id?: string; wait?: boolean; callbackUrl?: string }) => {
      const payload = parseJsonOption('--data', opts.data);
      await withProcessResources({ temporal: true }, async (resources) => {
        const ingress = await ingressFor(resources);
        try {
          printJson(await ingress.emit({ id: opts.id, type, payload: payload as Record<string, unknown>, callbackUrl: opts.callbackUrl }, { wait: opts.wait }));
        } finally {
          ingress.close();
        }
      });
    });
}
