// `mldeploy emit`: produce an event for the fan-out, optionally waiting for its decision.
import type { Command } from 'commander';
import { parseJsonOption, printJson, withStack } from './context.ts';
import { emitEvent } from '../streaming/emit.ts';

export function emitCommand(program: Command): void {
  program
    .command('emit <type>')
    .description('emit an event (e.g. ride_started) to the fan-out; prints the workflow id, or the decision with --wait')
    .requiredOption('--data <json>', 'the event payload, a JSON object, e.g. \'{"ride": {"PULocationID": 130, "DOLocationID": 205, "trip_distance": 3.66}}\'')
    .option('--id <id>', 'event id (default: a new UUID); emitting the same id again processes it once')
    .option('--wait', 'wait for the decision (up to MLDEPLOY_EVENT_WAIT_MS)')
    .option('--callback-url <url>', 'POST the decision to this URL once it exists')
    .action(async (type: string, opts: { data: string; id?: string; wait?: boolean; callbackUrl?: string }) => {
      const payload = parseJsonOption('--data', opts.data);
      await withStack({ temporal: true }, async (stack) => {
        const result = await emitEvent(await stack.client(), { id: opts.id, type, payload: payload as Record<string, unknown>, callbackUrl: opts.callbackUrl }, {
          taskQueue: stack.config.taskQueue,
          wait: opts.wait,
          waitMs: stack.config.streaming.waitMs,
          callbackHosts: stack.config.streaming.callbackHosts,
        });
        printJson(result);
      });
    });
}
