// The one place that reads the environment. Every variable here is listed in the table in
// docs/configuration.md (test/unit/deploy.test.ts checks it); keep the two in step.
import path from 'node:path';
import { z } from 'zod';
import { callbackRefusal } from './streaming/callback.ts';

const intFrom = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const HOST_PATTERN = /^(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,62})(?:\.[a-z0-9](?:[a-z0-9-]{0,62}))*$|^\d{1,3}(?:\.\d{1,3}){3}$|^\[[0-9a-f:.]+\]$/;

/**
 * Parses MLDEPLOY_CALLBACK_HOSTS, the hosts decision callbacks may go to (comma-separated):
 * host names, `*.example.com` for any subdomain, IPv4 or [IPv6] literals.
 */
export function parseCallbackHosts(value: string): string[] {
  const hosts = value
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
  const bad = hosts.filter((h) => !HOST_PATTERN.test(h));
  if (bad.length > 0)
    throw new Error(`not host names: ${bad.map((h) => JSON.stringify(h)).join(', ')} (use names such as hooks.example.com or *.example.com, without scheme or port)`);
  return hosts;
}

const LogLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info');

/**
 * MLDEPLOY_LOG_LEVEL alone, for the logger, which exists before the configuration is loaded.
 * An invalid value logs at info here; loadConfig reports it.
 */
export function logLevel(env: NodeJS.ProcessEnv = process.env): z.output<typeof LogLevel> {
  const parsed = LogLevel.safeParse(env.MLDEPLOY_LOG_LEVEL || undefined);
  return parsed.success ? parsed.data : 'info';
}

/** The folders PATH names, where the Temporal CLI is looked for after TEMPORAL_CLI_PATH. */
export function executableSearchPath(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.PATH ?? '').split(path.delimiter).filter(Boolean);
}

/** The environment a spawned program (initdb, postgres) gets: this process's, with `overrides`. */
export function childEnvironment(overrides: Record<string, string>, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, ...overrides };
}

const flag = z
  .enum(['0', '1', 'false', 'true'])
  .default('0')
  .transform((v) => v === '1' || v === 'true');

const EnvSchema = z.object({
  MLDEPLOY_DATA_DIR: z.string().default('.mldeploy'),
  DATABASE_URL: z.string().optional(),
  TEMPORAL_ADDRESS: z.string().optional(),
  TEMPORAL_PROFILE: z.string().optional(),
  TEMPORAL_CONFIG_FILE: z.string().optional(),
  TEMPORAL_CLI_PATH: z.string().optional(),
  MLDEPLOY_TEMPORAL_PORT: intFrom(7233),
  MLDEPLOY_UI_PORT: intFrom(8233),
  MLDEPLOY_TEMPORAL_UI_URL: z.string().url().optional(),
  MLDEPLOY_TASK_QUEUE: z.string().min(1).default('mldeploy'),
  MLDEPLOY_MODEL_THREADS: intFrom(1),
  MLDEPLOY_MAX_MODEL_MB: intFrom(256),
  MLDEPLOY_LOG_LEVEL: LogLevel,
  // Web service (mldeploy serve).
  MLDEPLOY_SERVE_HOST: z.string().min(1).default('127.0.0.1'),
  MLDEPLOY_SERVE_PORT: z.coerce.number().int().min(0).max(65535).default(9696),
  // The Open Inference Protocol's gRPC service beside the web service; 0 leaves it off.
  MLDEPLOY_GRPC_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  MLDEPLOY_SERVE_MODEL: z.string().min(1).default('trip-duration@production'),
  MLDEPLOY_API_TOKEN: z.string().min(16, 'use at least 16 characters').optional(),
  MLDEPLOY_SERVE_MAX_RECORDS: intFrom(10_000),
  MLDEPLOY_SERVE_BODY_LIMIT_MB: intFrom(4),
  MLDEPLOY_SERVE_BATCH_MAX: intFrom(64),
  MLDEPLOY_SERVE_BATCH_DELAY_US: z.coerce.number().int().min(0).max(1_000_000).default(0),
  MLDEPLOY_SERVE_ALIAS_POLL_MS: intFrom(1000),
  MLDEPLOY_SERVE_NOOP_ROUTE: flag,
  MLDEPLOY_PREDICTION_LOG: flag,
  MLDEPLOY_PREDICTION_LOG_QUEUE: intFrom(10_000),
  // Streaming fan-out (events, consumers, streams).
  MLDEPLOY_ROUTING_FILE: z.string().min(1).default('config/routing.json'),
  MLDEPLOY_STREAM_BACKEND: z.enum(['postgres', 'nats']).default('postgres'),
  MLDEPLOY_STREAM_NAMESPACE: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'use letters, digits, - or _')
    .default('mldeploy'),
  MLDEPLOY_NATS_URL: z.string().min(1).default('127.0.0.1:4222'),
  MLDEPLOY_EVENT_WAIT_MS: intFrom(10_000),
  MLDEPLOY_CALLBACK_HOSTS: z
    .string()
    .transform((value, ctx) => {
      try {
        return parseCallbackHosts(value);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    })
    .optional(),
  // Model monitoring (docs/monitoring.md).
  MLDEPLOY_PUBLIC_URL: z.string().url().optional(),
  MLDEPLOY_ALERT_WEBHOOK_URL: z
    .string()
    .url()
    .regex(/^https?:\/\//i, 'use an http:// or https:// URL')
    .optional(),
  MLDEPLOY_MONITOR_SAMPLE_RATE: z.coerce.number().min(0).max(1).default(0.1),
  // Worker observability (mldeploy worker): 0 turns an endpoint off.
  MLDEPLOY_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  MLDEPLOY_WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  MLDEPLOY_SDK_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9465),
  // MLflow's own variables, for `models import` and `models follow`.
  MLFLOW_TRACKING_URI: z.string().optional(),
  MLFLOW_TRACKING_TOKEN: z.string().optional(),
  MLFLOW_TRACKING_USERNAME: z.string().optional(),
  MLFLOW_TRACKING_PASSWORD: z.string().optional(),
  MLFLOW_TRACKING_INSECURE_TLS: flag,
});

export type Config = ReturnType<typeof loadConfig>;

/**
 * The environment Temporal's env config (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
 * TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE) reads, with empty
 * variables left out like everywhere else: `TEMPORAL_API_KEY=` must not switch TLS on.
 */
export function temporalEnvironment(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''));
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env) {
  // An empty variable means unset, as in most tools (`DATABASE_URL= mldeploy dev`).
  const set = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = EnvSchema.safeParse(set);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  // The alert webhook is a call from inside the deployment, like a decision callback: the same allow-list applies.
  const alertRefusal = e.MLDEPLOY_ALERT_WEBHOOK_URL && callbackRefusal(e.MLDEPLOY_ALERT_WEBHOOK_URL, e.MLDEPLOY_CALLBACK_HOSTS);
  if (alertRefusal) throw new Error(`invalid configuration: MLDEPLOY_ALERT_WEBHOOK_URL: ${alertRefusal.replace('callbackUrl host', 'host')}`);
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
      /** Web UI base URL for links when the cluster is not the local dev server. */
      uiUrl: e.MLDEPLOY_TEMPORAL_UI_URL,
    },
    taskQueue: e.MLDEPLOY_TASK_QUEUE,
    modelThreads: e.MLDEPLOY_MODEL_THREADS,
    maxModelBytes: e.MLDEPLOY_MAX_MODEL_MB * 1024 * 1024,
    logLevel: e.MLDEPLOY_LOG_LEVEL,
    serve: {
      host: e.MLDEPLOY_SERVE_HOST,
      port: e.MLDEPLOY_SERVE_PORT,
      /** inference.GRPCInferenceService on the same host; 0 = off. */
      grpcPort: e.MLDEPLOY_GRPC_PORT,
      /** The model behind the course-compatible POST /predict. */
      defaultModel: e.MLDEPLOY_SERVE_MODEL,
      apiToken: e.MLDEPLOY_API_TOKEN,
      maxRecords: e.MLDEPLOY_SERVE_MAX_RECORDS,
      bodyLimitBytes: e.MLDEPLOY_SERVE_BODY_LIMIT_MB * 1024 * 1024,
      batchMax: e.MLDEPLOY_SERVE_BATCH_MAX,
      batchDelayUs: e.MLDEPLOY_SERVE_BATCH_DELAY_US,
      aliasPollMs: e.MLDEPLOY_SERVE_ALIAS_POLL_MS,
      noopRoute: e.MLDEPLOY_SERVE_NOOP_ROUTE,
      predictionLog: e.MLDEPLOY_PREDICTION_LOG,
      predictionLogQueue: e.MLDEPLOY_PREDICTION_LOG_QUEUE,
      /** Share of a monitored model's records kept for its monitor when the prediction log is off (0: none). */
      monitorSampleRate: e.MLDEPLOY_MONITOR_SAMPLE_RATE,
    },
    streaming: {
      routingFile: path.resolve(e.MLDEPLOY_ROUTING_FILE),
      backend: e.MLDEPLOY_STREAM_BACKEND,
      namespace: e.MLDEPLOY_STREAM_NAMESPACE,
      natsUrl: e.MLDEPLOY_NATS_URL,
      /** How long a synchronous emit (--wait, ?wait=true) waits for the decision. */
      waitMs: e.MLDEPLOY_EVENT_WAIT_MS,
      /** Hosts decision callbacks may go to; undefined allows any. */
      callbackHosts: e.MLDEPLOY_CALLBACK_HOSTS,
    },
    monitoring: {
      /** The web service's address as users reach it (report links); default http://<serve host>:<serve port>. */
      publicUrl: (e.MLDEPLOY_PUBLIC_URL ?? `http://${e.MLDEPLOY_SERVE_HOST}:${e.MLDEPLOY_SERVE_PORT}`).replace(/\/+$/, ''),
      /** Where drifted runs are reported (POST, JSON); a monitor's own webhook goes first. */
      alertWebhookUrl: e.MLDEPLOY_ALERT_WEBHOOK_URL,
      /** Hosts an alert webhook may name (MLDEPLOY_CALLBACK_HOSTS); undefined allows any. */
      alertHosts: e.MLDEPLOY_CALLBACK_HOSTS,
      /** Share of a monitored model's stream events whose features are kept for its monitor. */
      sampleRate: e.MLDEPLOY_MONITOR_SAMPLE_RATE,
    },
    metrics: {
      host: e.MLDEPLOY_METRICS_HOST,
      /** mldeploy's own Prometheus registry (batch, streaming, process metrics). */
      workerPort: e.MLDEPLOY_WORKER_METRICS_PORT,
      /** The Temporal SDK's Prometheus exporter (temporal_* metrics). */
      sdkPort: e.MLDEPLOY_SDK_METRICS_PORT,
    },
    mlflow: {
      trackingUri: e.MLFLOW_TRACKING_URI,
      token: e.MLFLOW_TRACKING_TOKEN,
      username: e.MLFLOW_TRACKING_USERNAME,
      password: e.MLFLOW_TRACKING_PASSWORD,
      insecureTls: e.MLFLOW_TRACKING_INSECURE_TLS,
    },
  };
}
