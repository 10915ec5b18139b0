// The `mldeploy` command line. Each top-level command's module is loaded only when that
// command runs: loading them all (Temporal, onnxruntime, fastify, NATS) took over a second
// before `--help` could answer. The summaries below are what `mldeploy --help` lists.
import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { PACKAGE_ROOT } from '../package-root.ts';
import { exitCodeFor, EXIT_CODES_HELP } from './exit-codes.ts';

type Register = (program: Command) => void;

/** Top-level command → its one-line summary and the registration function of its module. */
const COMMANDS: Record<string, [summary: string, load: () => Promise<Register>]> = {
  dev: ['start the local stack, set up the demo and stay up until Ctrl-C', async () => (await import('./dev.ts')).devCommand],
  worker: ['run a worker against the configured Temporal and PostgreSQL', async () => (await import('./worker.ts')).workerCommand],
  models: ['register, list, show, promote and delete ONNX models', async () => (await import('./models.ts')).modelsCommands],
  predict: ['score a JSON record or array of records', async () => (await import('./models.ts')).modelsCommands],
  data: ['example data', async () => (await import('./data.ts')).dataCommands],
  score: ['score one window of a table now, as a durable Temporal workflow', async () => (await import('./score.ts')).scoreCommands],
  schedule: ['Temporal Schedules that run batch scoring jobs', async () => (await import('./score.ts')).scoreCommands],
  runs: ['batch runs: list, show, cancel', async () => (await import('./runs.ts')).runsCommands],
  report: ["write a batch or monitor run's drift report", async () => (await import('./report.ts')).reportCommand],
  monitor: ['monitors of online and stream traffic: create, list, delete', async () => (await import('./monitor.ts')).monitorCommands],
  serve: ['run the online web service until SIGINT or SIGTERM', async () => (await import('./serve.ts')).serveCommand],
  emit: ['emit an event to the fan-out', async () => (await import('./emit.ts')).emitCommand],
  events: ['inspect events of the streaming fan-out', async () => (await import('./events.ts')).eventsCommands],
  streams: ['read the prediction and decision streams', async () => (await import('./streams.ts')).streamsCommands],
  bridge: ['hand events published on a NATS JetStream subject to the fan-out', async () => (await import('./bridge.ts')).bridgeCommand],
  'dead-letters': ['events the fan-out could not process: list, replay', async () => (await import('./dead-letters.ts')).deadLettersCommands],
};

const VERSION: string = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')).version;

const program = new Command()
  .name('mldeploy')
  .description('Deploy ONNX models on Temporal: scheduled batch scoring, an online prediction service and event-driven fan-out.')
  .version(VERSION, '-V, --version')
  .showHelpAfterError()
  .exitOverride()
  .addHelpText('after', EXIT_CODES_HELP);

/** The command the arguments name (`mldeploy help <command>` included), if it is one of ours. */
function requested(args: string[]): string | undefined {
  const [first, second] = args.filter((a) => !a.startsWith('-'));
  const name = first === 'help' ? second : first;
  return name && Object.hasOwn(COMMANDS, name) ? name : undefined;
}

try {
  const name = requested(process.argv.slice(2));
  if (name) {
    const register = await COMMANDS[name][1]();
    register(program);
  } else {
    for (const [command, [summary]] of Object.entries(COMMANDS)) program.command(command).summary(summary).allowUnknownOption().helpOption(false);
  }
  await program.parseAsync(process.argv);
} catch (err) {
  const code = exitCodeFor(err);
  if (!(err instanceof CommanderError)) process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(code);
}
