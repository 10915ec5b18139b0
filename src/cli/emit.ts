// Streaming commands: `mldeploy emit` (produce an event, optionally wait for its decision),
// `mldeploy streams tail` (read or follow a stream, optionally as a durable subscriber) and
// `mldeploy bridge` (JetStream subject → fan-out workflows).
import type { Command } from 'commander';
import { parseJsonOption, positiveInt, printJson, UsageError, withStack } from './context.ts';
import { startBridge } from '../streaming/bridge.ts';
import { emitEvent } from '../streaming/emit.ts';
import { followStream } from '../streaming/follow.ts';
import { closeStreamBackends, streamingSettings } from '../streaming/settings.ts';
import { subscribe } from '../streaming/subscriber.ts';
import { STREAM_NAMES, type StreamName } from '../streaming/types.ts';
import type { StoredRecord } from '../streaming/backend.ts';

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

function streamName(value: string): StreamName {
  if (!(STREAM_NAMES as readonly string[]).includes(value)) throw new UsageError(`no stream named '${value}' (streams: ${STREAM_NAMES.join(', ')})`);
  return value as StreamName;
}

const printLines = async (records: StoredRecord[]) => {
  for (const r of records) process.stdout.write(JSON.stringify(r) + '\n');
};

export function streamingCommands(program: Command): void {
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

  const streams = program.command('streams').description('read the prediction and decision streams');
  streams
    .command('tail <stream>')
    .description(`print records of a stream (${STREAM_NAMES.join(' or ')}) as JSON lines`)
    .option('--after <offset>', 'start after this offset', '0')
    .option('--limit <n>', 'records to print without --follow', positiveInt('--limit'), 100)
    .option('--follow', 'keep printing new records until Ctrl-C')
    .option('--subscriber <name>', 'a durable subscriber: resume from, and store, its offset in PostgreSQL (implies --follow)')
    .action(async (name: string, opts: { after: string; limit: number; follow?: boolean; subscriber?: string }) => {
      const stream = streamName(name);
      if (!/^\d+$/.test(opts.after)) throw new UsageError(`--after must be a non-negative integer, got ${JSON.stringify(opts.after)}`);
      await withStack({ temporal: false }, async (stack) => {
        const backend = await streamingSettings(stack.config.streaming, stack.pool).backend();
        try {
          if (opts.subscriber) {
            const sub = subscribe({ pool: stack.pool, backend, stream, name: opts.subscriber, handle: printLines });
            await Promise.race([untilSignal(), sub.done]);
            await sub.stop();
          } else if (opts.follow) {
            const abort = new AbortController();
            void untilSignal().then(() => abort.abort());
            await followStream(backend, stream, { after: Number(opts.after), signal: abort.signal, onPage: printLines });
          } else {
            await printLines(await backend.read(stream, Number(opts.after), opts.limit));
          }
        } finally {
          await closeStreamBackends();
        }
      });
    });

  program
    .command('bridge')
    .description('start fan-out workflows for the events published on a NATS JetStream subject (acked once Temporal accepted them)')
    .option('--stream <name>', 'JetStream stream of the events (created when missing)', 'mldeploy_events')
    .option('--subject <subject>', 'subject the events are published on', 'mldeploy.events.>')
    .option('--durable <name>', 'durable consumer name (a restarted bridge resumes from it)', 'mldeploy-bridge')
    .option('--concurrency <n>', 'messages handled at once', positiveInt('--concurrency'), 64)
    .action(async (opts: { stream: string; subject: string; durable: string; concurrency: number }) => {
      await withStack({ temporal: true }, async (stack) => {
        const bridge = await startBridge({ natsUrl: stack.config.streaming.natsUrl, ...opts, client: await stack.client(), taskQueue: stack.config.taskQueue, pool: stack.pool });
        process.stdout.write(`bridge: ${opts.subject} (stream ${opts.stream}, consumer ${opts.durable}) → task queue ${stack.config.taskQueue}; Ctrl-C stops it\n`);
        await Promise.race([untilSignal(), bridge.done]);
        await bridge.stop();
        process.stdout.write(`bridge stopped after starting ${bridge.started()} events\n`);
      });
    });
}
