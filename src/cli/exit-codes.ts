// mldeploy's exit codes: 0 success, 1 an operational error (including a bad value, which the
// command explains), 2 a usage error the parser finds (unknown command or option, a missing
// argument), as most command-line tools do.
import { CommanderError } from 'commander';

export const EXIT_CODES_HELP = '\nExit codes: 0 success, 1 error (the command says what went wrong), 2 usage error (unknown command or option, missing argument).\n';

export function exitCodeFor(err: unknown): number {
  if (!(err instanceof CommanderError)) return 1;
  // Help and --version end parsing with code 0; everything else the parser refused is usage.
  return err.exitCode === 0 ? 0 : 2;
}
