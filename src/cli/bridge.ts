// `mldeploy bridge`: start fan-out workflows for the events published on a NATS JetStream subject.
import type { Command } from 'commander';
import { positiveInt, withStack } from './context.ts';
import { untilSignal } from './signals.ts';
import { startBridge } from '../streaming/bridge.ts';

export function bridgeCommand(program: Command): void {
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
