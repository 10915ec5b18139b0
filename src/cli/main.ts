// The `mldeploy` command line.
import { Command, CommanderError } from 'commander';
import { bridgeCommand } from './bridge.ts';
import { dataCommands } from './data.ts';
import { devCommand } from './dev.ts';
import { emitCommand } from './emit.ts';
import { eventsCommands } from './events.ts';
import { modelsCommands } from './models.ts';
import { runsCommands } from './runs.ts';
import { scoreCommands } from './score.ts';
import { serveCommand } from './serve.ts';
import { streamsCommands } from './streams.ts';
import { workerCommand } from './worker.ts';
import { installTemporalLogging } from '../temporal-logging.ts';

installTemporalLogging();

const program = new Command()
  .name('mldeploy')
  .description('Deploy ONNX models on Temporal: scheduled batch scoring, an online prediction service and event-driven fan-out.')
  .showHelpAfterError()
  .exitOverride();

devCommand(program);
workerCommand(program);
modelsCommands(program);
dataCommands(program);
scoreCommands(program);
serveCommand(program);
emitCommand(program);
eventsCommands(program);
streamsCommands(program);
bridgeCommand(program);
runsCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
