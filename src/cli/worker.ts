// `mldeploy worker`: the composition root of a worker process. It opens the process's
// resources once (pool, models, one stream backend, one Temporal connection) and runs the
// main task queue's worker and the consumers' workers on them.
import type { Command } from 'commander';
import { loadConfig } from '../config.ts';
import { exportSdkMetrics, serveWorkerMetrics } from '../observability/worker-observability.ts';
import { openResources } from '../resources.ts';
import { consumerWorkers, ensureBatchedPartitions, mainWorkers } from '../worker.ts';
import { untilSignal } from './signals.ts';

const say = (line: string) => process.stdout.write(`${line}\n`);

export function workerCommand(program: Command): void {
  program
    .command('worker')
    .description('run a worker against the configured Temporal and PostgreSQL until SIGINT or SIGTERM')
    .option('--task-queue <name>', 'task queue to poll (default: MLDEPLOY_TASK_QUEUE)')
    .option('--consumers <names>', 'run only these streaming consumers (comma-separated names from the routing file), each on its own task queue')
    .option('--no-consumers', 'run only the main task queue (batch runs, event workflows), so each consumer can run and go down on its own')
    .action(async (opts: { taskQueue?: string; consumers?: string | false }) => {
      const config = loadConfig();
      const resources = await openResources(config, { temporal: true });
      try {
        exportSdkMetrics(config);
        const names =
          opts.consumers === false
            ? undefined
            : opts.consumers
                ?.split(',')
                .map((n) => n.trim())
                .filter(Boolean);
        // --consumers: only those consumers' queues; --no-consumers: only the main queue; otherwise both.
        const main = names ? [] : await mainWorkers(resources, opts.taskQueue);
        const consumers = opts.consumers === false ? { workers: [], taskQueues: [] } : await consumerWorkers(resources, names ?? []);
        const workers = [...main, ...consumers.workers];
        const metrics = await serveWorkerMetrics(config, workers);
        const running = workers.map((w) => w.run());
        if (main.length) say(`worker polling ${opts.taskQueue ?? config.taskQueue} on ${resources.stack.temporal!.connectionOptions.address}`);
        if (main.length) {
          const partitions = await ensureBatchedPartitions(resources, opts.taskQueue);
          if (partitions.length) say(`batched partitions: ${partitions.length} workflows (${partitions[0]} …)`);
        }
        if (consumers.taskQueues.length) say(`consumers polling ${consumers.taskQueues.join(', ')}`);
        try {
          await Promise.race([untilSignal(), ...running]);
        } finally {
          for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
          await Promise.allSettled(running);
          await metrics?.close();
        }
      } finally {
        await resources.close();
      }
    });
}
