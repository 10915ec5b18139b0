// Routes the Temporal SDK's logs (worker, workflow and activity loggers, which carry the
// workflow and run ids) into our pino JSON log. The SDK is chatty at INFO (bundler output,
// state changes), so it logs from WARN up unless MLDEPLOY_LOG_LEVEL asks for debug.
// The runtime is created lazily (on the first worker connection) from Runtime.defaultOptions,
// so `mldeploy worker` can still install it with the SDK's Prometheus exporter.
import { DefaultLogger, Runtime, type LogLevel, type RuntimeOptions } from '@temporalio/worker';
import { log } from './log.ts';

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

let installed = false;

/**
 * Warnings the SDK gives for a setup mldeploy chose: consumer workers run activities only, so
 * a normal start is not shown as a problem (they stay visible at debug level).
 */
const EXPECTED = new Set(['No workflows registered, not polling for workflow tasks']);

function loggingOptions(): RuntimeOptions {
  const sdkLevel: LogLevel = log.level === 'debug' || log.level === 'trace' ? 'DEBUG' : 'WARN';
  const logger = new DefaultLogger(sdkLevel, (entry) => {
    const level = entry.level === 'WARN' && EXPECTED.has(entry.message) ? 'debug' : PINO_LEVEL[entry.level];
    log[level]({ sdk: 'temporal', ...entry.meta }, entry.message);
  });
  return { logger };
}

export function installTemporalLogging(): void {
  if (installed) return;
  installed = true;
  Runtime.defaultOptions = loggingOptions();
}

/**
 * Creates the runtime now, exporting the SDK's own metrics (temporal_*, e.g. task slots, poll
 * and schedule-to-start latencies) for Prometheus at bindAddress. Call it before the first
 * worker connection. Returns why the exporter could not start (the address is taken by
 * another worker on this host, or this process already created the runtime), or null; the
 * worker keeps running either way.
 */
export function installTemporalRuntimeWithMetrics(bindAddress: string): string | null {
  installed = true;
  if (Runtime._instance) return 'the Temporal runtime was already created in this process';
  const options = loggingOptions();
  try {
    Runtime.install({ ...options, telemetryOptions: { metrics: { prometheus: { bindAddress, countersTotalSuffix: true, useSecondsForDurations: true } } } });
    return null;
  } catch (err) {
    if (!/address already in use/i.test(String(err))) throw err;
    Runtime.install(options);
    return 'the address is in use (another worker on this host?)';
  }
}
