// The one place that reads the environment. Every variable here is listed in the README's
// configuration table; keep the two in step.
import path from 'node:path';
import { z } from 'zod';

const intFrom = (fallback: number) =>
  z.coerce.number().int().positive().default(fallback);

const EnvSchema = z.object({
  MLDEPLOY_DATA_DIR: z.string().default('.mldeploy'),
  DATABASE_URL: z.string().optional(),
  TEMPORAL_ADDRESS: z.string().optional(),
  TEMPORAL_PROFILE: z.string().optional(),
  TEMPORAL_CONFIG_FILE: z.string().optional(),
  TEMPORAL_CLI_PATH: z.string().optional(),
  MLDEPLOY_TEMPORAL_PORT: intFrom(7233),
  MLDEPLOY_UI_PORT: intFrom(8233),
  MLDEPLOY_TASK_QUEUE: z.string().min(1).default('mldeploy'),
  MLDEPLOY_MODEL_THREADS: intFrom(1),
  MLDEPLOY_MAX_MODEL_MB: intFrom(256),
  MLDEPLOY_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

export type Config = ReturnType<typeof loadConfig>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env) {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  const dataDir = path.resolve(e.MLDEPLOY_DATA_DIR);
  return {
    dataDir,
    databaseUrl: e.DATABASE_URL,
    temporal: {
      /** An external cluster is configured: never start a dev server. */
      external: Boolean(e.TEMPORAL_ADDRESS || e.TEMPORAL_PROFILE || e.TEMPORAL_CONFIG_FILE),
      cliPath: e.TEMPORAL_CLI_PATH,
      port: e.MLDEPLOY_TEMPORAL_PORT,
      uiPort: e.MLDEPLOY_UI_PORT,
    },
    taskQueue: e.MLDEPLOY_TASK_QUEUE,
    modelThreads: e.MLDEPLOY_MODEL_THREADS,
    maxModelBytes: e.MLDEPLOY_MAX_MODEL_MB * 1024 * 1024,
    logLevel: e.MLDEPLOY_LOG_LEVEL,
  };
}
