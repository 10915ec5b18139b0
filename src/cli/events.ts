// `mldeploy events show <type> <id>`: one event's predictions and decision, where it is (its
// partition and offset in batched mode, its workflow in per-event mode) and its dead letter.
import type { Command } from 'commander';
import { printJson, withProcessResources } from './context.ts';
import { eventDetails } from '../streaming/event-details.ts';
import { loadRouting, RoutingError, type Routing } from '../streaming/routing.ts';

/** The routing, or none when the file cannot be read: showing an event needs it only to name consumers. */
export async function routingOrEmpty(file: string): Promise<{ routing: Routing; problem?: string }> {
  try {
    return { routing: await loadRouting(file) };
  } catch (err) {
    if (err instanceof RoutingError) return { routing: { events: {} }, problem: err.message };
    throw err;
  }
}

export function eventsCommands(program: Command): void {
  const events = program.command('events').description('inspect events of the streaming fan-out');
  events
    .command('show <type> <id>')
    .description("print an event's predictions and decision, its partition and offset (batched) or workflow (per-event), and its dead-letter reason if it has one")
    .action(async (type: string, id: string) => {
      await withProcessResources({ temporal: true }, async ({ config, pool, stack, streaming, inbound }) => {
        const { routing } = await routingOrEmpty(streaming.routingFile);
        const details = await eventDetails(
          { pool, backend: await streaming.backend(), inbound, namespace: config.streaming.namespace, routing, client: await stack.client() },
          type,
          id,
        );
        printJson(details);
      });
    });
}
