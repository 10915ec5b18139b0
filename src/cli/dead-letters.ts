// `mldeploy dead-letters list | replay`: events the fan-out could never process (bad payload,
// unknown fields), and sending them again once fixed. A replay emits the event under the id
// `<id>:replay` (the original id is spent: the fan-out processes an id once), with the stored
// payload or a corrected one, then removes the dead letter. Replaying the same letter again
// emits the same id, which the fan-out processes once, so a retried replay changes nothing.
import type { Command } from 'commander';
import { parseJsonOption, positiveInt, printJson, UsageError, withProcessResources, withStack } from './context.ts';
import { printList, withOutputOptions, type OutputFlags } from './output.ts';

export function deadLettersCommands(program: Command): void {
  const letters = program.command('dead-letters').description('events the fan-out could not process: list them, replay them once fixed');
  withOutputOptions(letters.command('list').description('dead-lettered events, newest first'))
    .option('--type <type>', 'of this event type only')
    .option('--limit <n>', 'how many', positiveInt('--limit'), 50)
    .action(async (flags: OutputFlags & { type?: string; limit: number }) => {
      await withStack({ temporal: false }, async (stack) => {
        const { rows } = await stack.pool.query(
          `SELECT event_type, event_id, source, reason, created_at, payload FROM dead_letters
           WHERE ($1::text IS NULL OR event_type = $1) ORDER BY created_at DESC, event_type, event_id LIMIT $2`,
          [flags.type ?? null, flags.limit],
        );
        const json = flags.json || flags.output === 'json';
        const list = rows.map((r) => ({
          type: r.event_type as string,
          id: r.event_id as string,
          source: r.source as string,
          created: r.created_at as Date,
          reason: r.reason as string,
          ...(json ? { payload: r.payload } : {}),
        }));
        printList(list, flags, 'no dead letters');
      });
    });
  letters
    .command('replay <type> <id>')
    .description('emit a dead-lettered event again as <id>:replay (with --data, a corrected payload) and remove the dead letter')
    .option('--data <json>', 'the corrected payload (default: the stored one)')
    .action(async (type: string, id: string, opts: { data?: string }) => {
      const corrected = opts.data === undefined ? undefined : parseJsonOption('--data', opts.data);
      await withProcessResources({ temporal: true }, async (resources) => {
        const { rows } = await resources.pool.query('SELECT payload FROM dead_letters WHERE event_type = $1 AND event_id = $2', [type, id]);
        if (!rows[0]) throw new UsageError(`no dead letter ${type}/${id} (see mldeploy dead-letters list)`);
        const payload = (corrected ?? rows[0].payload) as Record<string, unknown>;
        const { ingressFor } = await import('../streaming/ingress.ts');
        const ingress = await ingressFor(resources);
        try {
          const emitted = await ingress.emit({ id: `${id}:replay`, type, payload });
          await resources.pool.query('DELETE FROM dead_letters WHERE event_type = $1 AND event_id = $2', [type, id]);
          printJson({ replayed: { type, id }, ...emitted });
        } finally {
          ingress.close();
        }
      });
    });
}
