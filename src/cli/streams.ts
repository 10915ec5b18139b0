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
import { perEvent } from '../streaming/prediction-batches.ts';
import { STREAM_NAMES, type Decision, type PredictionRecord, type StreamName } from '../streaming/types.ts';
import { withOutputOptions, type OutputFlags } from './output.ts';
import type { StoredRecord } from '../streaming/backend.ts';

function streamName(value: string): StreamName {
  if (!(STREAM_NAMES as readonly string[]).includes(value)) throw new UsageError(`no stream named '${value}' (streams: ${STREAM_NAMES.join(', ')})`);
  return value as StreamName;
}

// A followed stream's table cannot size its columns from all its rows: the columns have fixed
// widths (a longer cell pushes its row's later cells right), and the header is printed once.
const TAIL_COLUMNS: Record<StreamName, Array<[header: string, width: number, cell: (r: StoredRecord) => unknown]>> = {
  predictions: [
    ['OFFSET', 8, (r) => r.offset],
    ['TIME', 26, (r) => (r.value as PredictionRecord).time],
    ['EVENT', 40, (r) => `${(r.value as PredictionRecord).eventType}:${(r.value as PredictionRecord).eventId}`],
    ['CONSUMER', 12, (r) => (r.value as PredictionRecord).consumer],
    ['MODEL', 20, (r) => `${(r.value as PredictionRecord).model.name}@${(r.value as PredictionRecord).model.version}`],
    ['PREDICTION', 0, (r) => JSON.stringify((r.value as PredictionRecord).prediction)],
  ],
  decisions: [
    ['OFFSET', 8, (r) => r.offset],
    ['TIME', 26, (r) => (r.value as Decision).time],
    ['EVENT', 40, (r) => `${(r.value as Decision).eventType}:${(r.value as Decision).eventId}`],
    ['STATUS', 10, (r) => (r.value as Decision).status],
    ['ACTION', 18, (r) => (r.value as Decision).action ?? ''],
    ['REASONS', 0, (r) => (r.value as Decision).reasons.join('; ')],
  ],
};

const tailLine = (cells: unknown[], stream: StreamName) =>
  cells.map((cell, i) => (i === cells.length - 1 ? String(cell) : String(cell).padEnd(TAIL_COLUMNS[stream][i][1] - 2) + '  ')).join('') + '\n';

/** Prints records as JSON lines, or as table rows (the header before the first). */
function printer(stream: StreamName, flags: OutputFlags): (records: StoredRecord[]) => Promise<void> {
  const json = flags.json || flags.output === 'json';
  let header = !json;
  return async (records) => {
    if (header) {
      process.stdout.write(
        tailLine(
          TAIL_COLUMNS[stream].map(([h]) => h),
          stream,
        ),
      );
      header = false;
    }
    // A batched-mode prediction record holds a range's predictions: a table row per event.
    const rows = json || stream !== 'predictions' ? records : records.flatMap((r) => perEvent(r.value as PredictionRecord).map((value) => ({ ...r, value })));
    for (const r of rows)
      process.stdout.write(
        json
          ? JSON.stringify(r) + '\n'
          : tailLine(
              TAIL_COLUMNS[stream].map(([, , cell]) => cell(r)),
              stream,
            ),
      );
  };
}

export function streamsCommands(program: Command): void {
  const streams = program.command('streams').description('read the prediction and decision streams');
  withOutputOptions(streams.command('tail <stream>'))
    .description(`print records of a stream (${STREAM_NAMES.join(' or ')}): a table, or JSON lines with -o json`)
    .option('--after <offset>', 'start after this offset', '0')
    .option('--limit <n>', 'records to print without --follow', positiveInt('--limit'), 100)
    .option('--follow', 'keep printing new records until Ctrl-C')
    .option('--subscriber <name>', 'a durable subscriber: resume from, and store, its offset in PostgreSQL (implies --follow)')
    .action(async (name: string, opts: OutputFlags & { after: string; limit: number; follow?: boolean; subscriber?: string }) => {
      const stream = streamName(name);
      if (opts.output && opts.json && opts.output !== 'json') throw new UsageError('--json and -o table contradict each other');
      const printLines = printer(stream, opts);
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
