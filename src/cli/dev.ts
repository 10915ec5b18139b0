// `mldeploy dev`: the composition root of the local all-in-one process. It opens the
// process's resources once (the local stack, models, one stream backend) and runs the worker,
// the consumers and the web service on them, after setting up the demo.
import type { Command } from 'commander';
import { Client } from '@temporalio/client';
import { loadConfig } from '../config.ts';
import { openResources, type Resources } from '../resources.ts';
import { consumerWorkers, ensureBatchedPartitions, mainWorkers } from '../worker.ts';
import { ingressFor, type EventIngress } from '../streaming/ingress.ts';
import { demoEvent } from '../streaming/demo.ts';
import { startBatchRun } from '../batch/client.ts';
import { DEMO_JOB, DEMO_MONTHS, DEMO_SCHEDULE_ID, demoPrediction, ensureDemoRides, ensureDemoSchedule, ensureExampleModels, ensureExampleProfiles } from '../demo.ts';
import { reportUrl } from '../monitoring/run-report.ts';
import type { WebService } from '../serve/service.ts';
import { followRun, workflowLink } from './score.ts';
import { webServiceFor } from './serve.ts';
import { untilSignal } from './signals.ts';

const say = (line: string) => process.stdout.write(`${line}\n`);

/** Sets up the demo and scores its first month; returns that run's id. */
async function runDemo({ stack, store, models, config }: Resources): Promise<string> {
  const added = await ensureExampleModels(store, config.maxModelBytes);
  if (added.length) say(`registered example models: ${added.join(', ')} (alias production)`);
  const seeded = await ensureDemoRides(stack.pool);
  if (seeded) say(`seeded ${seeded} demo rides (${DEMO_MONTHS.join(', ')})`);
  const profiled = await ensureExampleProfiles(stack.pool, store, models);
  if (profiled.length) say(`reference profiles for drift monitoring (rides of ${DEMO_MONTHS[0]}): ${profiled.join(', ')}`);
  const client = await stack.client();
  await ensureDemoSchedule(client, config.taskQueue);
  say(`schedule ${DEMO_SCHEDULE_ID}: '0 3 2 * *' scores the previous month's rides`);

  const [month] = DEMO_MONTHS;
  const from = new Date(`${month}-01T00:00:00Z`);
  const to = new Date(from);
  to.setUTCMonth(to.getUTCMonth() + 1);
  const handle = await startBatchRun(client, config.taskQueue, { ...DEMO_JOB, period: undefined, window: { from: from.toISOString(), to: to.toISOString() } });
  const summary = await followRun(handle);
  say(
    `demo batch run ${handle.workflowId}: ${summary.rowsScored} rides scored, ${summary.rowsRejected} rejected, RMSE ${summary.stats?.rmse?.toFixed(2) ?? 'n/a'} min, ${summary.durationMs} ms`,
  );
  if (summary.drift) say(`  drift: ${summary.drift.drifted ? 'DRIFTED' : 'stable'} (${summary.drift.features.length ? summary.drift.features.join(', ') : 'no feature'} drifted)`);
  const link = workflowLink(stack, handle.workflowId);
  if (link) say(`  ${link}`);
  return summary.runId;
}

export function devCommand(program: Command): void {
  program
    .command('dev')
    .description('start the local stack (Temporal dev server, PostgreSQL, worker), set up the demo and stay up until Ctrl-C')
    .option('--once', 'run the demo, then shut everything down and exit')
    .action(async (opts: { once?: boolean }) => {
      const config = loadConfig();
      const resources = await openResources(config, { temporal: true });
      const { stack } = resources;
      try {
        const main = await mainWorkers(resources);
        const consumers = await consumerWorkers(resources, []);
        const running = Promise.all(main.map((w) => w.run()));
        const consumersRunning = consumers.workers.map((w) => w.run());
        let web: WebService | undefined;
        let ingress: EventIngress | undefined;
        try {
          say(`PostgreSQL: ${stack.databaseUrl.replace(/:[^:@/]*@/, ':***@')}`);
          say(`Temporal:   ${stack.temporal!.connectionOptions.address} (namespace ${stack.temporal!.namespace})`);
          say(`Web UI:     ${stack.temporal!.uiUrl ?? config.temporal.uiUrl ?? '(not served by this stack)'}`);
          say(`Worker:     task queue ${config.taskQueue}; consumers ${consumers.taskQueues.join(', ')}`);
          await ensureBatchedPartitions(resources);
          const demoRun = await runDemo(resources);
          // The worker polls the main queue in this process: per-event types start on it eagerly.
          const eagerClient = new Client({ connection: await stack.nativeConnection(), namespace: stack.temporal!.namespace });
          ingress = await ingressFor(resources, eagerClient);
          say(await demoEvent(ingress, config.streaming.waitMs));
          // --once picks a free port, so it never collides with a running service.
          web = await webServiceFor(resources, { port: opts.once ? 0 : undefined, eagerClient, ingress, quiet: true });
          say(`Web service: ${web.url} (docs ${web.url}/docs)`);
          say(`  drift report of the demo run: ${reportUrl(web.url, demoRun)}`);
          say(`  ${await demoPrediction(web.url, config.serve.apiToken)}`);
          if (!opts.once) {
            say('mldeploy dev is up; other mldeploy commands use this stack. Ctrl-C stops it.');
            await Promise.race([untilSignal(), running]);
          }
        } finally {
          say('shutting down…');
          await web?.close();
          ingress?.close();
          for (const w of [...main, ...consumers.workers]) if (w.getState() === 'RUNNING') w.shutdown();
          await running;
          await Promise.allSettled(consumersRunning);
        }
      } finally {
        await resources.close();
      }
    });
}
