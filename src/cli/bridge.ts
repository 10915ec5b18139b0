// `mldeploy bridge`: start fan-out workflows for the events published on a NATS JetStream subject.
import type { Command } from 'commander';
import { positiveInt, withProcessResources } from './context.ts';
import { ingressFor } from '../streaming/ingress.ts';
import { untilSignal } from './signals.ts';
import { startBridge } from '../streaming/bridge.ts';

export function bridgeCommand(program: Command): void {
  program
    .command('bridge')
    .description('hand the events published on a NATS JetStream subject to the fan-out (acked once accepted: a workflow start, or an append to the inbound log in batched mode)')
    .option('--stream <name>', 'JetStream stream of the events (created when missing)', 'mldeploy_events')
    .option('--subject <subject>', 'subject the events are published on', 'mldeploy.events.>')
    .option('--durable <name>', 'durable consumer name (a restarted bridge resumes from it)', 'mldeploy-bridge')
    .option('--concurrency <n>', 'messages handled at once', positiveInt('--concurrency'), 64)
    .action(async (opts: { stream: string; subject: string; durable: string; concurrency: number }) => {
      await withProcessResources({ temporal: true }, async (resources) => {
        const { config } = resources;
        const ingress = await ingressFor(resources);
        const bridge = await startBridge({ natsUrl: config.streaming.natsUrl, ...opts, ingress, pool: resources.pool });
        process.stdout.write(`bridge: ${opts.subject} (stream ${opts.stream}, consumer ${opts.durable}) → task queue ${config.taskQueue}; Ctrl-C stops it\n`);
        await Promise.race([untilSignal(), bridge.done]);
        await bridge.stop();
        ingress.close();
        process.stdout.write(`bridge stopped after starting ${bridge.started()} events\n`);
      });
    });
}
