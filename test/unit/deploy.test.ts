// Static checks of the container deployment (no Docker engine needed): the compose file
// parses and is complete, every mldeploy service runs a real CLI command with variables
// mldeploy knows, the image installs what the code imports, and the README documents
// every variable src/config.ts reads.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ALL_SEARCH_ATTRIBUTES, CLI_TYPE_NAMES } from '../../workflows/search-attributes.ts';

interface Service {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string | number | boolean | null>;
  healthcheck?: { test: string[] | string };
  depends_on?: Record<string, { condition: string }>;
  restart?: string;
  ports?: string[];
  container_name?: string;
  deploy?: { replicas?: number | string };
  stop_grace_period?: string;
}

const read = (file: string) => fs.readFileSync(path.resolve(file), 'utf8');
const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;
const mldeployServices = Object.entries(services).filter(([, s]) => s.build !== undefined);

/** Variables src/config.ts's schema reads. */
const configVariables = [...read('src/config.ts').matchAll(/^ {2}([A-Z][A-Z0-9_]+): /gm)].map((m) => m[1]);

/** Temporal's environment configuration (read by @temporalio/envconfig, not by config.ts). */
const TEMPORAL_ENV_CONFIG = /^TEMPORAL_(ADDRESS|NAMESPACE|API_KEY|PROFILE|CONFIG_FILE|TLS|TLS_[A-Z_]+|GRPC_META_[A-Z0-9_]+)$/;
const knownToMldeploy = (name: string) => configVariables.includes(name) || TEMPORAL_ENV_CONFIG.test(name) || name === 'DATABASE_URL';

/** `${NAME}`, `${NAME:-x}`, `${NAME-x}`, `${NAME:?msg}` interpolations (not `$${...}` escapes). */
const interpolated = (text: string) => new Set([...text.matchAll(/(?<!\$)\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]));

function dotenv(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) vars.set(m[1], m[2]);
  }
  return vars;
}

const asArgs = (command: Service['command']) =>
  Array.isArray(command)
    ? command
    : String(command ?? '')
        .split(/\s+/)
        .filter(Boolean);

describe('docker-compose.yml', () => {
  it('has PostgreSQL, a Temporal server on it, the Web UI, workers and the web service', () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(['postgresql', 'temporal', 'temporal-ui', 'worker', 'serve']));
    expect(services.temporal.environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'postgresql' });
    expect(services.temporal.depends_on?.postgresql.condition).toBe('service_healthy');
  });

  it('pins every image to a version', () => {
    for (const [name, service] of Object.entries(services)) {
      if (service.build !== undefined) continue;
      expect(service.image, name).toMatch(/^[\w./-]+:\d[\w.-]*$/);
    }
  });

  it('has a healthcheck on every long-running service; one-off jobs are awaited until they succeed', () => {
    for (const [name, service] of Object.entries(services)) {
      if (service.restart === 'no') {
        const waiters = Object.values(services).filter((s) => s.depends_on?.[name]?.condition === 'service_completed_successfully');
        expect(waiters.length, `${name} is a one-off job someone waits for`).toBeGreaterThan(0);
        continue;
      }
      expect(service.healthcheck?.test, `${name} healthcheck`).toBeDefined();
    }
  });

  it("can run several workers: replicas, no fixed container name or host port, a stop grace period above the worker's", () => {
    const worker = services.worker;
    expect(worker.deploy?.replicas).toBeDefined();
    expect(worker.container_name).toBeUndefined();
    expect(worker.ports).toBeUndefined();
    const workerGrace = Number(/shutdownGraceTime: '(\d+) seconds'/.exec(read('src/worker.ts'))![1]);
    expect(Number(/^(\d+)s$/.exec(worker.stop_grace_period!)![1])).toBeGreaterThan(workerGrace);
  });

  it("registers exactly mldeploy's search attributes, with their types", () => {
    const job = services['temporal-search-attributes'];
    const script = asArgs(job.command).join(' ');
    const pairs = [...script.matchAll(/(Mldeploy\w+):(\w+)/g)].map((m) => `${m[1]}=${m[2]}`);
    expect(pairs.sort()).toEqual(ALL_SEARCH_ATTRIBUTES.map((k) => `${k.name}=${CLI_TYPE_NAMES[k.type]}`).sort());
    expect(services.worker.depends_on?.['temporal-search-attributes'].condition).toBe('service_completed_successfully');
  });

  it('runs real mldeploy commands in the mldeploy services', () => {
    expect(mldeployServices.map(([name]) => name)).toEqual(expect.arrayContaining(['worker', 'serve']));
    for (const [name, service] of mldeployServices) {
      const args = asArgs(service.command);
      const words = args.filter((a) => !a.startsWith('-'));
      const result = spawnSync(process.execPath, ['bin/mldeploy.js', ...words, '--help'], { encoding: 'utf8', timeout: 60_000 });
      expect(result.status, `${name}: mldeploy ${words.join(' ')} --help\n${result.stderr}`).toBe(0);
      // commander prints the top-level help for an unknown command; a known one prints its own usage.
      expect(result.stdout, name).toMatch(new RegExp(`^Usage: mldeploy ${words.join(' ')} `));
      for (const flag of args.filter((a) => a.startsWith('--'))) expect(result.stdout, `${name} ${flag}`).toContain(flag.split('=')[0]);
    }
  });

  it('sets only variables mldeploy reads on the mldeploy services', () => {
    for (const [name, service] of mldeployServices) {
      const unknown = Object.keys(service.environment ?? {}).filter((v) => !knownToMldeploy(v));
      expect(unknown, name).toEqual([]);
    }
  });

  it('binds the web service and the worker metrics to all interfaces inside the container', () => {
    expect(services.serve.environment?.MLDEPLOY_SERVE_HOST).toBe('0.0.0.0');
    expect(services.worker.environment?.MLDEPLOY_METRICS_HOST).toBe('0.0.0.0');
  });
});

describe('.env.example', () => {
  const example = dotenv(read('.env.example'));
  const used = interpolated(read('docker-compose.yml'));

  it('documents every variable docker-compose.yml interpolates', () => {
    expect([...used].filter((v) => !example.has(v))).toEqual([]);
  });

  it('has no variable compose ignores, and none for mldeploy that mldeploy does not read', () => {
    for (const name of example.keys()) {
      expect(used.has(name), `${name} is used by docker-compose.yml`).toBe(true);
      if (/^(MLDEPLOY_|TEMPORAL_|DATABASE_URL$)/.test(name)) expect(knownToMldeploy(name), `${name} is read by mldeploy`).toBe(true);
    }
  });

  it('values satisfy src/config.ts', async () => {
    const { loadConfig } = await import('../../src/config.ts');
    const mldeployOnly = Object.fromEntries([...example].filter(([name]) => configVariables.includes(name)));
    expect(() => loadConfig(mldeployOnly)).not.toThrow();
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

  it('builds on node:20-slim with production dependencies only and runs the CLI', () => {
    expect(dockerfile).toMatch(/^FROM node:20-slim$/m);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(dockerfile).toMatch(/COPY package\.json package-lock\.json \.\/$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "bin\/mldeploy\.js"\]$/m);
    // npm 11 runs no install script allowScripts does not approve: onnxruntime-node's (a GPU download) stays off.
    expect((JSON.parse(read('package.json')) as { allowScripts: Record<string, boolean> }).allowScripts['onnxruntime-node']).toBe(false);
  });

  it('copies every folder the runtime code lives in', () => {
    for (const dir of ['bin', 'src', 'workflows', 'activities', 'config', 'models']) expect(dockerfile).toMatch(new RegExp(`^COPY ${dir} \\./${dir}$`, 'm'));
  });

  it('every package the runtime code imports statically is a production dependency (npm ci --omit=dev installs it)', () => {
    const files = ['bin', 'src', 'workflows', 'activities'].flatMap((dir) =>
      (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => /\.(ts|js)$/.test(f)).map((f) => path.join(dir, f)),
    );
    const missing = new Set<string>();
    for (const file of files) {
      for (const m of read(file).matchAll(/^\s*import\s+(?!type\b)[^'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]/gm)) {
        const spec = m[1] ?? m[2];
        if (spec.startsWith('.') || spec.startsWith('node:')) continue;
        const pkgName = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
        if (!(pkgName in pkg.dependencies)) missing.add(`${pkgName} (${file})`);
      }
    }
    expect([...missing]).toEqual([]);
  });

  it('.dockerignore keeps local state and secrets out of the build context', () => {
    const ignored = read('.dockerignore').split('\n');
    for (const entry of ['node_modules', '.mldeploy', '.git', '.env']) expect(ignored).toContain(entry);
  });
});

describe('docs/grafana-dashboard.json', () => {
  interface Panel {
    id: number;
    type: string;
    title: string;
    gridPos: { h: number; w: number; x: number; y: number };
    targets?: Array<{ expr: string; refId: string }>;
  }
  const dashboard = JSON.parse(read('docs/grafana-dashboard.json')) as {
    title: string;
    uid: string;
    schemaVersion: number;
    panels: Panel[];
    templating: { list: Array<{ name: string }> };
  };
  const queries = dashboard.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
  /** Metric names the code defines (prom-client `name: '...'`), plus the default process metrics. */
  const defined = new Set(
    ['src', 'activities'].flatMap((dir) =>
      (fs.readdirSync(dir, { recursive: true }) as string[])
        .filter((f) => f.endsWith('.ts'))
        .flatMap((f) => [...read(path.join(dir, f)).matchAll(/name: '(mldeploy_\w+)'/g)].map((m) => m[1])),
    ),
  );

  it('is a Grafana dashboard: title, uid, panels with unique ids inside the 24-column grid, a Prometheus data source variable', () => {
    expect(dashboard).toMatchObject({ title: 'mldeploy', uid: expect.any(String), schemaVersion: expect.any(Number) });
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
      if (panel.type !== 'row') expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
    }
    expect(dashboard.templating.list.map((v) => v.name)).toContain('datasource');
  });

  it('covers batch, web service, streaming, prediction-log and Temporal SDK metrics', () => {
    const text = queries.join('\n');
    for (const metric of [
      'mldeploy_batch_rows_scored_total',
      'mldeploy_batch_rows_rejected_total',
      'mldeploy_http_requests_total',
      'mldeploy_http_request_duration_seconds',
      'mldeploy_inference_duration_seconds',
      'mldeploy_prediction_log_dropped_total',
      'mldeploy_stream_predictions_total',
      'mldeploy_stream_decisions_total',
      'mldeploy_stream_batch_size',
      'mldeploy_stream_partition_lag',
      'temporal_',
    ]) {
      expect(text).toContain(metric);
    }
  });

  it('queries only mldeploy metrics the code defines', () => {
    const used = new Set(queries.flatMap((q) => [...q.matchAll(/\b(mldeploy_\w+?)(?:_bucket|_count|_sum)?\b(?=[{[\s)]|$)/g)].map((m) => m[1])));
    const unknown = [...used].filter((m) => !defined.has(m) && !m.startsWith('mldeploy_process_'));
    expect(unknown).toEqual([]);
  });
});

describe('docs/configuration.md table', () => {
  it('lists every variable src/config.ts reads', () => {
    const table = read('docs/configuration.md');
    const missing = configVariables.filter((v) => !table.includes(`\`${v}\``));
    expect(missing).toEqual([]);
  });

  it('is linked from the README, whose short table names only variables mldeploy reads', () => {
    const readme = read('README.md');
    expect(readme).toContain('(docs/configuration.md)');
    const listed = [...readme.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
    expect(listed.length).toBeGreaterThanOrEqual(10);
    expect(listed.filter((v) => !knownToMldeploy(v))).toEqual([]);
  });
});
