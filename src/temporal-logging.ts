// Routes the Temporal SDK's logs (worker, workflow and activity loggers, which carry the
// workflow and run ids) into our pino JSON log. The SDK is chatty at INFO (bundler output,
// state changes), so it logs from WARN up unless MLDEPLOY_LOG_LEVEL asks for debug.
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import { log } from './log.ts';

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

let installed = false;

export function installTemporalLogging(): void {
  if (installed) return;
  installed = true;
  const sdkLevel: LogLevel = log.level === 'debug' || log.level === 'trace' ? 'DEBUG' : 'WARN';
  const logger = new DefaultLogger(sdkLevel, (entry) => {
    log[PINO_LEVEL[entry.level]]({ sdk: 'temporal', ...entry.meta }, entry.message);
  });
  Runtime.install({ logger });
}
