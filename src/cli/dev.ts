// `mldeploy dev` (the whole local stack plus the demo) and `mldeploy worker`.
import type { Command } from 'commander';
import { Client } from '@temporalio/client';
import { loadConfig } from '../config.ts';
import { openStack, type Stack } from '../stack/stack.ts';
import { ModelStore } from '../registry/store.ts';
import { consumerWorkersForStack, workerForStack } from '../worker.ts';
import { ModelCache } from '../registry/runtime.ts';
import { closeStreamBackends } from '../streaming/settings.ts';
import { demoEvent } from '../streaming/demo.ts';
import { startBatchRun } from '../batch/client.ts';
import { DEMO_JOB, DEMO_MONTHS, DEMO_SCHEDULE_ID, ensureDemoRides, ensureDemoSchedule, ensureExampleModels } from '../demo.ts';
import { followRun, workflowLink } from './score.ts';
import { exportSdkMetrics, serveWorkerMetrics } from '../observability/worker-observability.ts';
import { demoPrediction, startWebService, type WebService } from './serve.ts';

const say = (line: string) => process.stdout.write(`${line}\n`);

/** Resolves on the first SIGINT or SIGTERM. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

async function runDemo(stack: Stack): Promise<void> {
  const store = new ModelStore(stack.pool);
  const added = await ensureExampleModels(store, stack.config.maxModelBytes);
  if (added.length) say(`registered example models: ${added.join(', ')} (alias production)`);
  const seeded = await ensureDemoRides(stack.pool);
  if (seeded) say(`seeded ${seeded} demo rides (${DEMO_MONTHS.join(', ')})`);
  const client = await stack.client();
  await ensureDemoSchedule(client, stack.config.taskQueue);
  say(`schedule ${DEMO_SCHEDULE_ID}: '0 3 2 * *' scores the previous month's rides`);

  const [month] = DEMO_MONTHS;
  const from = new Date(`${month}-01T00:00:00Z`);
  const to = new Date(from);
  to.setUTCMonth(to.getUTCMonth() + 1);
  const handle = await startBatchRun(client, stack.config.taskQueue, { ...DEMO_JOB, period: undefined, window: { from: from.toISOString(), to: to.toISOString() } });
  const summary = await followRun(handle);
  say(`demo batch run ${handle.workflowId}: ${summary.rowsScored} rides scored, ${summary.rowsRejected} rejected, RMSE ${summary.stats?.rmse?.toFixed(2) ?? 'n/a'} min, ${summary.durationMs} ms`);
  const link = workflowLink(stack, handle.workflowId);
  if (link) say(`  ${link}`);
}

export function devCommand(program: Command): void {
  program
    .command('dev')
    .description('start the local stack (Temporal dev server, PostgreSQL, worker), set up the demo and stay up until Ctrl-C')
    .option('--once', 'run the demo, then shut everything down and exit')
    .action(async (opts: { once?: boolean }) => {
      const config = loadConfig();
      const stack = await openStack(config, { temporal: true });
      const { worker, models } = await workerForStack(stack);
      const consumers = await consumerWorkersForStack(stack, models, []);
      const running = worker.run();
      const consumersRunning = consumers.workers.map((w) => w.run());
      let web: WebService | undefined;
      try {
        say(`PostgreSQL: ${stack.databaseUrl.replace(/:[^:@/]*@/, ':***@')}`);
        say(`Temporal:   ${stack.temporal!.connectionOptions.address} (namespace ${stack.temporal!.namespace})`);
        say(`Web UI:     ${stack.temporal!.uiUrl ?? stack.config.temporal.uiUrl ?? '(not served by this stack)'}`);
        say(`Worker:     task queue ${config.taskQueue}; consumers ${consumers.taskQueues.join(', ')}`);
        await runDemo(stack);
        say(await demoEvent(await stack.client(), config.taskQueue, config.streaming.waitMs));
        // --once picks a free port, so it never collides with a running service.
        // The worker polls the main queue in this process: events posted here start on it eagerly.
        const eagerClient = new Client({ connection: await stack.nativeConnection(), namespace: stack.temporal!.namespace });
        web = await startWebService(stack, { models, port: opts.once ? 0 : undefined, eagerClient });
        say(`Web service: ${web.url} (docs ${web.url}/docs)`);
        say(`  ${await demoPrediction(web.url, config.serve.apiToken)}`);
        if (!opts.once) {
          say('mldeploy dev is up; other mldeploy commands use this stack. Ctrl-C stops it.');
          await Promise.race([untilSignal(), running]);
        }
      } finally {
        say('shutting down…');
        await web?.close();
        for (const w of [worker, ...consumers.workers]) if (w.getState() === 'RUNNING') w.shutdown();
        await running;
        await Promise.allSettled(consumersRunning);
        await models.release();
        await closeStreamBackends();
        await stack.close();
      }
    });
}

export function workerCommand(program: Command): void {
  program
    .command('worker')
    .description('run a worker against the configured Temporal and PostgreSQL until SIGINT or SIGTERM')
    .option('--task-queue <name>', 'task queue to poll (default: MLDEPLOY_TASK_QUEUE)')
    .option('--consumers <names>', 'run only these streaming consumers (comma-separated names from the routing file), each on its own task queue')
    .option('--no-consumers', 'run only the main task queue (batch runs, event workflows), so each consumer can run and go down on its own')
    .action(async (opts: { taskQueue?: string; consumers?: string | false }) => {
      const stack = await openStack(loadConfig(), { temporal: true });
      exportSdkMetrics(stack.config);
      const names = opts.consumers === false ? undefined : opts.consumers?.split(',').map((n) => n.trim()).filter(Boolean);
      // --consumers: only those consumers' queues; --no-consumers: only the main queue; otherwise both.
      const main = names ? undefined : await workerForStack(stack, opts.taskQueue);
      const models = main?.models ?? new ModelCache(new ModelStore(stack.pool), stack.config.modelThreads);
      const consumers = opts.consumers === false ? { workers: [], taskQueues: [] } : await consumerWorkersForStack(stack, models, names ?? []);
      const workers = [...(main ? [main.worker] : []), ...consumers.workers];
      const metrics = await serveWorkerMetrics(stack.config, workers);
      const running = workers.map((w) => w.run());
      if (main) say(`worker polling ${opts.taskQueue ?? stack.config.taskQueue} on ${stack.temporal!.connectionOptions.address}`);
      if (consumers.taskQueues.length) say(`consumers polling ${consumers.taskQueues.join(', ')}`);
      try {
        await Promise.race([untilSignal(), ...running]);
      } finally {
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await Promise.allSettled(running);
        await metrics?.close();
        await models.release();
        await closeStreamBackends();
        await stack.close();
      }
    });
}
