// `mldeploy streams tail`: read or follow the prediction and decision streams, optionally as a
// durable subscriber. `mldeploy streams status`: lag and throughput per event type, partition
// and consumer.
import type { Command } from 'commander';
import { positiveInt, printJson, UsageError, withProcessResources } from './context.ts';
import { routingOrEmpty } from './events.ts';
import { untilSignal } from './signals.ts';
import { followStream } from '../streaming/follow.ts';
import { streamsStatus } from '../streaming/streams-status.ts';
import { subscribe } from '../streaming/subscriber.ts';
import { STREAM_NAMES, type StreamName } from '../streaming/types.ts';
import type { StoredRecord } from '../streaming/backend.ts';

function streamName(value: string): StreamName {
  if (!(STREAM_NAMES as readonly string[]).includes(value)) throw new UsageError(`no stream named '${value}' (streams: ${STREAM_NAMES.join(', ')})`);
  return value as StreamName;
}

const printLines = async (records: StoredRecord[]) => {
  for (const r of records) process.stdout.write(JSON.stringify(r) + '\n');
};

export function streamsCommands(program: Command): void {
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
      await withProcessResources({ temporal: false }, async ({ pool, streaming }) => {
        const backend = await streaming.backend();
        if (opts.subscriber) {
          const sub = subscribe({ pool, backend, stream, name: opts.subscriber, handle: printLines });
          await Promise.race([untilSignal(), sub.done]);
          await sub.stop();
        } else if (opts.follow) {
          const abort = new AbortController();
          void untilSignal().then(() => abort.abort());
          await followStream(backend, stream, { after: Number(opts.after), signal: abort.signal, onPage: printLines });
        } else {
          await printLines(await backend.read(stream, Number(opts.after), opts.limit));
        }
      });
    });
  streams
    .command('status')
    .description(
      "lag and throughput per event type, partition and consumer: the inbound log's heads, each partition workflow's status query and the last minute of the streams, as JSON",
    )
    .option('--query-timeout <ms>', "how long to wait for a partition workflow's status query before calling it unreachable", positiveInt('--query-timeout'), 2_000)
    .action(async (opts: { queryTimeout: number }) => {
      await withProcessResources({ temporal: true }, async ({ config, pool, stack, streaming, inbound }) => {
        const { routing, problem } = await routingOrEmpty(streaming.routingFile);
        if (problem) throw new UsageError(problem);
        printJson(
          await streamsStatus({
            pool,
            backend: await streaming.backend(),
            inbound,
            namespace: config.streaming.namespace,
            routing,
            client: await stack.client(),
            queryTimeoutMs: opts.queryTimeout,
          }),
        );
      });
    });
}
