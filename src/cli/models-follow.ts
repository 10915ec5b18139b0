// `mldeploy models follow`: a durable Temporal workflow per followed alias that keeps an
// mldeploy alias on the version an MLflow alias names (workflows/model-follower.ts).
import type { Command } from 'commander';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { printJson, UsageError, withStack } from './context.ts';
import { workflowLink } from './score.ts';
import { MlflowClient } from '../mlflow/client.ts';
import { parseModelSource } from '../mlflow/uri.ts';
import { validateAlias, validateModelName } from '../registry/refs.ts';
import type { FollowerArgs, FollowerStatus, modelFollower } from '../../workflows/model-follower.ts';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseInterval(text: string): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text.trim());
  const ms = match ? Number(match[1]) * UNITS[match[2]] : NaN;
  if (!(ms >= 1000)) throw new UsageError(`--every must be a duration of at least 1s such as 30s, 5m or 1h, got ${JSON.stringify(text)}`);
  return ms;
}

const followerId = (name: string, alias: string) => `model-follower-${name}-${alias}`;

export function followCommand(models: Command): void {
  models
    .command('follow [name]')
    .description('keep an alias on the version an MLflow alias names (a durable Temporal workflow); --list and --stop manage followers')
    .option('--from <uri>', 'the MLflow alias to follow: models:/<registered-name>@<alias>')
    .option('--alias <alias>', 'the mldeploy alias to move', 'production')
    .option('--every <interval>', 'how often MLflow is asked (30s, 5m, …)', '30s')
    .option('--list', 'every running follower and its status')
    .option('--stop', 'stop the follower of <name> --alias <alias>')
    .action(async (name: string | undefined, opts: { from?: string; alias: string; every: string; list?: boolean; stop?: boolean }) => {
      if (opts.list) return listFollowers();
      if (!name) throw new UsageError('give the model name: mldeploy models follow <name> --from models:/<registered-name>@<alias>');
      validateModelName(name);
      validateAlias(opts.alias);
      if (opts.stop) return stopFollower(name, opts.alias);
      if (!opts.from) throw new UsageError('--from models:/<registered-name>@<alias> is required');
      if (parseModelSource(opts.from).kind !== 'alias') throw new UsageError(`--from must name an MLflow alias (models:/<registered-name>@<alias>), got ${opts.from}`);
      const everyMs = parseInterval(opts.every);
      await withStack({ temporal: true }, async (stack) => {
        const trackingUri = new MlflowClient(stack.config.mlflow).trackingUri;
        const args: FollowerArgs = { name, alias: opts.alias, from: opts.from!, trackingUri, everyMs };
        const workflowId = followerId(name, opts.alias);
        try {
          await (await stack.client()).workflow.start<typeof modelFollower>('modelFollower', { taskQueue: stack.config.taskQueue, workflowId, args: [args] });
        } catch (err) {
          if (err instanceof WorkflowExecutionAlreadyStartedError) throw new UsageError(`${name}@${opts.alias} is followed already (workflow ${workflowId}): --stop it first`);
          throw err;
        }
        printJson({ workflowId, following: opts.from, alias: `${name}@${opts.alias}`, everyMs, trackingUri, link: workflowLink(stack, workflowId) });
      });
    });
}

async function listFollowers(): Promise<void> {
  await withStack({ temporal: true }, async (stack) => {
    const client = await stack.client();
    const rows = [];
    for await (const w of client.workflow.list({ query: `WorkflowType = 'modelFollower' AND ExecutionStatus = 'Running'` })) {
      const handle = client.workflow.getHandle(w.workflowId);
      const status = await handle.query<FollowerStatus>('status').catch((err: Error) => ({ queryError: err.message }));
      rows.push({ workflowId: w.workflowId, startedAt: w.startTime.toISOString(), status });
    }
    printJson(rows);
  });
}

async function stopFollower(name: string, alias: string): Promise<void> {
  await withStack({ temporal: true }, async (stack) => {
    const workflowId = followerId(name, alias);
    try {
      await (await stack.client()).workflow.getHandle(workflowId).terminate('stopped with mldeploy models follow --stop');
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new UsageError(`no follower runs for ${name}@${alias}`);
      throw err;
    }
    printJson({ workflowId, stopped: true });
  });
}
