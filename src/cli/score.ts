// `mldeploy score` (one window now) and `mldeploy schedule …` (Temporal Schedules).
import { Option, type Command } from 'commander';
import cliProgress from 'cli-progress';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { backfillSchedule, createBatchSchedule, startBatchRun } from '../batch/client.ts';
import { PERIODS, type BatchJobInput } from '../batch/job.ts';
import type { RunSummary } from '../batch/scorer.ts';
import { progressQuery, type batchScoring } from '../../workflows/batch-scoring.ts';
import type { Stack } from '../stack/stack.ts';
import { positiveInt, printJson, UsageError, withProcessResources, withStack } from './context.ts';
import { parseDate } from './dates.ts';
import { printList, withOutputOptions, type OutputFlags } from './output.ts';
import { withWorker } from '../worker.ts';
import { reportUrl } from '../monitoring/run-report.ts';

interface JobFlags {
  job?: string;
  model: string;
  source: string;
  idColumn: string;
  timestampColumn: string;
  actualColumn?: string;
  passthrough?: string;
  target?: string;
  chunkSize?: number;
  parallelism?: number;
}

/** The job's options. Defaults are the job schema's (src/batch/job.ts), not repeated here. */
function jobOptions(command: Command): Command {
  return command
    .requiredOption('--model <ref>', 'model reference: name, name@alias or name@version')
    .requiredOption('--source <table>', 'table or view to score')
    .requiredOption('--id-column <column>', "the source's integer key column (predictions are keyed by it)")
    .requiredOption('--timestamp-column <column>', 'the column the window applies to')
    .option('--job <name>', 'job name (default: <source>-<model name>)')
    .option('--actual-column <column>', 'actual value to keep beside each prediction (enables RMSE)')
    .option('--passthrough <columns>', 'comma-separated columns copied into each prediction')
    .option('--target <table>', 'predictions table (default: predictions)')
    .option('--chunk-size <n>', 'rows per chunk activity (default: 50000)', positiveInt('--chunk-size'))
    .option('--parallelism <n>', 'chunks scored at once (default: 4)', positiveInt('--parallelism'));
}

function jobFromFlags(flags: JobFlags): BatchJobInput {
  const modelName = flags.model.split('@')[0];
  return {
    name: flags.job ?? `${flags.source.replace(/\./g, '_')}-${modelName}`,
    model: flags.model,
    source: {
      table: flags.source,
      idColumn: flags.idColumn,
      timestampColumn: flags.timestampColumn,
      actualColumn: flags.actualColumn,
      passthrough: flags.passthrough
        ? flags.passthrough
            .split(',')
            .map((c) => c.trim())
            .filter(Boolean)
        : [],
    },
    target: flags.target,
    chunkSize: flags.chunkSize,
    parallelism: flags.parallelism,
  };
}

export function workflowLink(stack: Stack, workflowId: string): string | undefined {
  const base = stack.config.temporal.uiUrl ?? stack.temporal?.uiUrl;
  return base ? `${base}/namespaces/${stack.temporal?.namespace ?? 'default'}/workflows/${encodeURIComponent(workflowId)}` : undefined;
}

/** Follows a run through its progress query until it ends; draws a bar on a terminal. */
export async function followRun(handle: WorkflowHandle<typeof batchScoring>): Promise<RunSummary> {
  const bar = process.stderr.isTTY
    ? new cliProgress.SingleBar(
        { format: 'scoring [{bar}] {value}/{total} rows | {rate} rows/s | ETA {eta_formatted}', stream: process.stderr, etaBuffer: 20 },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const started = Date.now();
  let barStarted = false;
  const timer = setInterval(async () => {
    const p = await handle.query(progressQuery).catch(() => undefined);
    if (!p || !bar || p.rowsPlanned === 0) return;
    const done = p.rowsRead;
    const rate = Math.round(done / Math.max((Date.now() - started) / 1000, 0.001));
    if (!barStarted) {
      bar.start(p.rowsPlanned, done, { rate });
      barStarted = true;
    } else bar.update(done, { rate });
  }, 500);
  try {
    return await handle.result();
  } finally {
    clearInterval(timer);
    if (barStarted) bar?.stop();
  }
}

export function scoreCommands(program: Command): void {
  jobOptions(program.command('score').description('score one window of a table now, as a durable Temporal workflow'))
    .requiredOption('--from <date>', 'window start (inclusive): YYYY-MM, YYYY-MM-DD or ISO')
    .requiredOption('--to <date>', 'window end (exclusive)')
    .option('--detach', 'print the workflow id and link, then return')
    .action(async (flags: JobFlags & { from: string; to: string; detach?: boolean }) => {
      const from = parseDate('--from', flags.from);
      const to = parseDate('--to', flags.to);
      if (from >= to) throw new UsageError('--from must be before --to');
      const job = { ...jobFromFlags(flags), window: { from: from.toISOString(), to: to.toISOString() } };
      await withProcessResources({ temporal: true }, async (resources) => {
        const { stack } = resources;
        const handle = await startBatchRun(await stack.client(), stack.config.taskQueue, job);
        const link = workflowLink(stack, handle.workflowId);
        if (flags.detach) {
          printJson({ workflowId: handle.workflowId, link });
          return;
        }
        // Without a running stack this command started Temporal itself, so it also runs the worker.
        const summary = stack.owner ? await withWorker(resources, () => followRun(handle)) : await followRun(handle);
        const drift = summary.drift && { ...summary.drift, report: reportUrl(stack.config.monitoring.publicUrl, summary.runId) };
        printJson({ ...summary, ...(drift ? { drift } : {}), workflowId: handle.workflowId, link });
      });
    });

  const schedule = program.command('schedule').description('Temporal Schedules that run batch scoring jobs');

  jobOptions(schedule.command('create <id>').description('create a schedule; each run scores the period before its time'))
    .requiredOption('--cron <expr>', "cron expression, for example '0 3 2 * *' (03:00 on the 2nd of each month)")
    .addOption(new Option('--period <period>', 'period each run scores').choices(PERIODS).default('month'))
    .option('--catchup-window <duration>', 'how late a missed run may still start', '1 day')
    .addOption(
      new Option('--overlap <policy>', 'when a run is still going at the next time')
        .choices(['SKIP', 'BUFFER_ONE', 'BUFFER_ALL', 'CANCEL_OTHER', 'TERMINATE_OTHER', 'ALLOW_ALL'])
        .default('SKIP'),
    )
    .action(async (id: string, flags: JobFlags & { cron: string; period: (typeof PERIODS)[number]; catchupWindow: string; overlap: 'SKIP' }) => {
      await withStack({ temporal: true }, async (stack) => {
        const job = { ...jobFromFlags(flags), period: flags.period };
        await createBatchSchedule(await stack.client(), {
          scheduleId: id,
          cron: flags.cron,
          job,
          taskQueue: stack.config.taskQueue,
          catchupWindow: flags.catchupWindow,
          overlap: flags.overlap,
        });
        printJson({ scheduleId: id, cron: flags.cron, job });
      });
    });

  withOutputOptions(schedule.command('list').description('every schedule: paused or not, its next run and workflow')).action(async (flags: OutputFlags) => {
    await withStack({ temporal: true }, async (stack) => {
      const rows = [];
      for await (const s of (await stack.client()).schedule.list()) {
        rows.push({
          id: s.scheduleId,
          paused: s.state.paused,
          next: s.info.nextActionTimes[0]?.toISOString() ?? '',
          workflow: s.action?.type === 'startWorkflow' ? s.action.workflowType : '',
        });
      }
      printList(rows, flags, 'no schedules');
    });
  });

  const onSchedule = (name: string, description: string, act: (client: Client, id: string) => Promise<unknown>) =>
    schedule
      .command(`${name} <id>`)
      .description(description)
      .action(async (id: string) => {
        await withStack({ temporal: true }, async (stack) => {
          const result = await act(await stack.client(), id);
          printJson(result ?? { scheduleId: id, done: name });
        });
      });

  onSchedule('describe', 'spec, state, recent and next runs', async (client, id) => {
    const d = await client.schedule.getHandle(id).describe();
    return {
      scheduleId: d.scheduleId,
      spec: d.spec,
      paused: d.state.paused,
      recentActions: d.info.recentActions.map((a) => ({ scheduledAt: a.scheduledAt, workflowId: a.action.workflow.workflowId })),
      nextActionTimes: d.info.nextActionTimes,
      action: d.action,
    };
  });
  onSchedule('pause', 'stop starting runs', (client, id) => client.schedule.getHandle(id).pause('paused with mldeploy'));
  onSchedule('unpause', 'start runs again', (client, id) => client.schedule.getHandle(id).unpause('unpaused with mldeploy'));
  onSchedule('trigger', 'start a run now', (client, id) => client.schedule.getHandle(id).trigger());
  onSchedule('delete', 'delete the schedule (runs already started go on)', (client, id) => client.schedule.getHandle(id).delete());

  schedule
    .command('backfill <id>')
    .description("run the schedule for every time in [from, to) with Temporal's backfill; each period is scored once")
    .requiredOption('--from <date>', 'first scheduled time to include')
    .requiredOption('--to <date>', 'end (exclusive)')
    .action(async (id: string, flags: { from: string; to: string }) => {
      const from = parseDate('--from', flags.from);
      const to = parseDate('--to', flags.to);
      if (from >= to) throw new UsageError('--from must be before --to');
      await withStack({ temporal: true }, async (stack) => {
        await backfillSchedule(await stack.client(), id, from, to);
        printJson({ scheduleId: id, backfill: { from: from.toISOString(), to: to.toISOString() } });
      });
    });
}
