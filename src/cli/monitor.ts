// `mldeploy monitor create|list|delete`: monitors of online (prediction log) and stream
// traffic, each a Temporal Schedule whose runs profile the last period against the model's
// reference profile (docs/monitoring.md).
import { Option, type Command } from 'commander';
import { createMonitor, deleteMonitor, formatEvery, listMonitors, parseDriftShare, parseEvery, parsePsiThreshold, parseSource } from '../monitoring/monitors.ts';
import { MONITOR_SOURCES } from '../monitoring/sampling.ts';
import { printJson, withStack } from './context.ts';
import { printList, withOutputOptions, type OutputFlags } from './output.ts';

export function monitorCommands(program: Command): void {
  const monitor = program.command('monitor').description('monitors of online and stream traffic: drift of each period against the reference profile');

  monitor
    .command('create <model-ref>')
    .description('create a monitor (a Temporal Schedule): every period, profile the last period of the model traffic and report drift')
    .requiredOption('--every <period>', 'how often, and the period each run profiles: 15m, 1h, 1d …')
    .addOption(
      new Option('--source <source>', 'the traffic: the web service (prediction-log) or the stream consumers (prediction-stream)')
        .choices(MONITOR_SOURCES)
        .default('prediction-log'),
    )
    .option('--webhook <url>', 'POSTed the summary of a drifted run (its host must be in MLDEPLOY_CALLBACK_HOSTS; default MLDEPLOY_ALERT_WEBHOOK_URL)')
    .option('--psi-threshold <psi>', 'a feature drifted when its PSI is at least this (default: 0.2)')
    .option('--drift-share <share>', 'a run drifted when at least this share of its features drifted (default: 0.5)')
    .action(async (ref: string, flags: { every: string; source: string; webhook?: string; psiThreshold?: string; driftShare?: string }) => {
      const everyMs = parseEvery(flags.every);
      const source = parseSource(flags.source);
      const thresholds = {
        ...(flags.psiThreshold !== undefined ? { psi: parsePsiThreshold(flags.psiThreshold) } : {}),
        ...(flags.driftShare !== undefined ? { share: parseDriftShare(flags.driftShare) } : {}),
      };
      await withStack({ temporal: true }, async (stack, store) => {
        const created = await createMonitor(stack.pool, store, await stack.client(), {
          ref,
          everyMs,
          source,
          webhookUrl: flags.webhook,
          thresholds,
          taskQueue: stack.config.taskQueue,
          alertHosts: stack.config.monitoring.alertHosts,
        });
        printJson({ ...created, every: formatEvery(created.everyMs) });
      });
    });

  withOutputOptions(monitor.command('list').description('every monitor: model, source, period, next run and the last run verdict')).action(async (flags: OutputFlags) => {
    await withStack({ temporal: true }, async (stack) => {
      const monitors = await listMonitors(stack.pool, await stack.client());
      const rows =
        flags.json || flags.output === 'json'
          ? monitors.map((m) => ({ ...m }))
          : monitors.map((m) => ({
              id: m.monitorId,
              model: m.modelRef,
              source: m.source,
              every: m.every,
              psi: m.thresholds.psi,
              share: m.thresholds.share,
              next: m.next ?? (m.paused === null ? 'no schedule' : ''),
              lastRun: m.lastRun?.runId ?? '',
              verdict: m.lastRun ? (m.lastRun.drifted === null ? m.lastRun.status : m.lastRun.drifted ? 'drifted' : 'stable') : '',
            }));
      printList(rows, flags, 'no monitors');
    });
  });

  monitor
    .command('delete <id>')
    .description('delete a monitor and its schedule (runs already started go on; reports stay)')
    .action(async (id: string) => {
      await withStack({ temporal: true }, async (stack) => printJson({ deleted: await deleteMonitor(stack.pool, await stack.client(), id) }));
    });
}
