import pino from 'pino';
import { logLevel } from './config.ts';

/** Structured JSON logs on stderr, so stdout stays free for command output. */
export const log = pino({ level: logLevel(), base: { service: 'mldeploy' } }, pino.destination(2));
