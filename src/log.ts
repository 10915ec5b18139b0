import pino from 'pino';

/** Structured JSON logs on stderr, so stdout stays free for command output. */
export const log = pino(
  { level: process.env.MLDEPLOY_LOG_LEVEL ?? 'info', base: { service: 'mldeploy' } },
  pino.destination(2),
);
