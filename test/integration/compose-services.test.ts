// The mldeploy services of docker-compose.yml (`worker` and `serve`), run as compose would run
// them, without Docker: each service's environment is computed from the compose file and
// .env.example (compose's interpolation, the `<<: *mldeploy-environment` merge, the image's
// ENV), only the network addresses are mapped onto this test's PostgreSQL, Temporal server
// and free ports, and each process is `node bin/mldeploy.js <the service's command>` in an
// empty data folder. The compose healthchecks themselves decide when a service is up; then
// the steps docs/deployment.md gives a compose user are run with the same environment, the
// deployment is used end to end (a prediction, a batch run on the two worker replicas, an
// event's decision), and every process gets SIGTERM and must exit 0 within its compose
// stop_grace_period. The third-party images (postgres, temporalio/*) are not covered.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.ts';
import { createPool, type Pool } from '../../src/db/pool.ts';
import { freePort } from '../../src/stack/ports.ts';

const exec = promisify(execFile);
const read = (file: string) => fs.readFileSync(path.resolve(file), 'utf8');

// ---------------------------------------------------------------------------------------------
// Compose's variable handling: .env files and interpolation.

type Vars = ReadonlyMap<string, string>;

/**
 * Compose's interpolation of one string: `$$` (a literal `$`), `$VAR`, `${VAR}`, `${VAR:-default}`
 * (unset or empty), `${VAR-default}` (unset), `${VAR:?message}` / `${VAR?message}` (an error),
 * `${VAR:+replacement}` / `${VAR+replacement}`. Defaults may themselves contain interpolations.
 */
export function interpolate(text: string, vars: Vars, where = 'value'): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    if (text[i] !== '$') {
      out += text[i++];
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
    } else if (next === '{') {
      let depth = 1;
      let j = i + 2;
      for (; j < text.length && depth > 0; j++) {
        if (text[j] === '{') depth++;
        else if (text[j] === '}') depth--;
      }
      if (depth !== 0) throw new Error(`${where}: unterminated \${ in ${JSON.stringify(text)}`);
      out += substitute(text.slice(i + 2, j - 1), vars, where);
      i = j;
    } else {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1))?.[0];
      if (!name) throw new Error(`${where}: invalid interpolation format in ${JSON.stringify(text)} (use $$ for a literal $)`);
      out += vars.get(name) ?? '';
      i += 1 + name.length;
    }
  }
  return out;
}

function substitute(body: string, vars: Vars, where: string): string {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([\s\S]*))?$/.exec(body);
  if (!m) throw new Error(`${where}: invalid interpolation \${${body}}`);
  const [, name, op, arg = ''] = m;
  const value = vars.get(name);
  const unset = value === undefined;
  const unsetOrEmpty = unset || value === '';
  switch (op) {
    case undefined:
      return value ?? '';
    case ':-':
      return unsetOrEmpty ? interpolate(arg, vars, where) : value!;
    case '-':
      return unset ? interpolate(arg, vars, where) : value;
    case ':?':
    case '?':
      if (op === ':?' ? unsetOrEmpty : unset) throw new Error(`${where}: required variable ${name} is missing a value: ${interpolate(arg, vars, where)}`);
      return value!;
    case ':+':
      return unsetOrEmpty ? '' : interpolate(arg, vars, where);
    case '+':
      return unset ? '' : interpolate(arg, vars, where);
    default:
      throw new Error(`${where}: unsupported operator ${op}`);
  }
}

/** A compose .env file: KEY=value lines, # comments, optional quotes and `export`; later values may use earlier ones. */
export function parseDotenv(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const [n, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new Error(`.env line ${n + 1}: cannot parse ${JSON.stringify(raw)}`);
    const [, name, rest] = m;
    let value: string;
    if (rest.startsWith("'")) {
      const end = rest.indexOf("'", 1);
      if (end < 0) throw new Error(`.env line ${n + 1}: unterminated quote`);
      value = rest.slice(1, end);
    } else if (rest.startsWith('"')) {
      const end = /(?<!\\)"/g;
      end.lastIndex = 1;
      const close = end.exec(rest);
      if (!close) throw new Error(`.env line ${n + 1}: unterminated quote`);
      value = interpolate(
        rest
          .slice(1, close.index)
          .replace(/\\n/g, '\n')
          .replace(/\\(["\\])/g, '$1'),
        vars,
        `.env line ${n + 1}`,
      );
    } else {
      value = interpolate(rest.replace(/\s+#.*$/, '').trim(), vars, `.env line ${n + 1}`);
    }
    vars.set(name, value);
  }
  return vars;
}

/** Interpolates every string in a parsed compose document, as compose does before using it. */
function interpolateTree(node: unknown, vars: Vars, where: string): unknown {
  if (typeof node === 'string') return interpolate(node, vars, where);
  if (Array.isArray(node)) return node.map((v, i) => interpolateTree(v, vars, `${where}[${i}]`));
  if (node && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateTree(v, vars, `${where}.${k}`)]));
  return node;
}

/** A Go duration as compose writes them: 45s, 1m30s, 500ms. */
function durationMs(text: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 1e-3, µs: 1e-3, ns: 1e-6 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw new Error(`not a duration: ${JSON.stringify(text)}`);
  return parts.reduce((ms, p) => ms + Number(p[1]) * units[p[2]], 0);
}

/** `environment:` as a mapping or as a list of KEY=value; values as compose passes them (strings). */
function environmentOf(service: ComposeService): Record<string, string> {
  const env = service.environment ?? {};
  const entries: Array<[string, unknown]> = Array.isArray(env)
    ? env.map((item: string) => {
        const eq = item.indexOf('=');
        return eq < 0 ? [item, null] : [item.slice(0, eq), item.slice(eq + 1)];
      })
    : Object.entries(env);
  // A name without a value takes the shell's value, and none is set here: it is left out.
  return Object.fromEntries(entries.filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => [k, String(v)]));
}

/** The image's ENV instructions (the container's environment before compose's). */
function imageEnvironment(dockerfile: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of dockerfile.replace(/\\\r?\n/g, ' ').matchAll(/^ENV\s+(.+)$/gm)) {
    for (const pair of m[1].matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S*)/g)) env[pair[1]] = pair[2];
  }
  return env;
}

interface ComposeService {
  command?: string[] | string;
  environment?: Record<string, unknown> | string[];
  healthcheck?: { test: string[] | string; interval?: string; timeout?: string; retries?: number; start_period?: string };
  stop_grace_period?: string;
  deploy?: { replicas?: number | string };
  depends_on?: Record<string, { condition: string }> | string[];
}

// ---------------------------------------------------------------------------------------------
// The one place where compose's network addresses become this test's.

/** Addresses of the compose network, as the compose file writes them. */
const COMPOSE_POSTGRES = 'postgresql:5432';
const COMPOSE_TEMPORAL = 'temporal:7233';
const CONTAINER_PORTS = { worker: { MLDEPLOY_WORKER_METRICS_PORT: '9464', MLDEPLOY_SDK_METRICS_PORT: '9465' }, serve: { MLDEPLOY_SERVE_PORT: '9696' } } as const;

interface Mapped {
  env: Record<string, string>;
  /** Container port → the port this process listens on. */
  ports: Map<string, string>;
}

/**
 * DATABASE_URL's host postgresql:5432 → the test PostgreSQL; TEMPORAL_ADDRESS temporal:7233 →
 * the test's Temporal server; the fixed container ports → free ones (containers each have their
 * own network namespace, processes here do not). Nothing else changes; any other value that
 * names a compose host fails the test instead of silently reaching nowhere.
 */
async function mapNetwork(service: 'worker' | 'serve', env: Record<string, string>, postgresHost: string, temporalAddress: string): Promise<Mapped> {
  const out = { ...env };
  const url = new URL(env.DATABASE_URL);
  expect(url.host, 'DATABASE_URL host').toBe(COMPOSE_POSTGRES);
  url.host = postgresHost;
  out.DATABASE_URL = url.toString();
  expect(env.TEMPORAL_ADDRESS, 'TEMPORAL_ADDRESS').toBe(COMPOSE_TEMPORAL);
  out.TEMPORAL_ADDRESS = temporalAddress;
  const ports = new Map<string, string>();
  for (const [name, containerPort] of Object.entries(CONTAINER_PORTS[service])) {
    expect(env[name], `${service} ${name}`).toBe(containerPort);
    const port = String(await freePort());
    out[name] = port;
    ports.set(containerPort, port);
  }
  const composeHosts = /\b(postgresql|temporal|temporal-ui|worker|serve):\d+/;
  for (const [name, value] of Object.entries(out)) expect(value, `${service} ${name} still names a compose host`).not.toMatch(composeHosts);
  return { env: out, ports };
}

// ---------------------------------------------------------------------------------------------
// Processes.

class ServiceProcess {
  readonly child: ChildProcess;
  readonly startedAt = Date.now();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  stdout = '';
  stderr = '';

  constructor(
    readonly name: string,
    args: string[],
    readonly env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, ['bin/mldeploy.js', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d) => (this.stdout = (this.stdout + d).slice(-200_000)));
    this.child.stderr!.on('data', (d) => (this.stderr = (this.stderr + d).slice(-200_000)));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve((this.exit = { code, signal }))));
  }

  output(): string {
    return `--- ${this.name} (pid ${this.child.pid}) stdout ---\n${this.stdout.slice(-3000)}\n--- ${this.name} stderr ---\n${this.stderr.slice(-5000)}`;
  }
}

/** `docker compose run --rm <service> <args>`: one mldeploy command with the service's environment. */
async function runOnce(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, ['bin/mldeploy.js', ...args], { env, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function runOk(args: string[], env: Record<string, string>): Promise<string> {
  const result = await runOnce(args, env);
  expect(result.code, `mldeploy ${args.join(' ')}\n${result.stdout}\n${result.stderr}`).toBe(0);
  return result.stdout;
}

/** Runs a compose healthcheck's CMD once, as the engine does (killed after `timeout`); true when it exits 0. */
function runHealthcheck(test: string[], env: Record<string, string>, timeoutMs: number): Promise<boolean> {
  expect(test[0], 'healthcheck form').toBe('CMD');
  expect(test[1], 'healthcheck program').toBe('node');
  return new Promise((resolve) => {
    const check = spawn(process.execPath, test.slice(2), { env, stdio: 'ignore', timeout: timeoutMs, killSignal: 'SIGKILL' });
    check.once('error', () => resolve(false));
    check.once('exit', (code) => resolve(code === 0));
  });
}

/** The healthcheck's CMD with only the container port replaced by the process's port. */
function healthcheckFor(service: ComposeService, name: string, ports: Map<string, string>): string[] {
  const test = service.healthcheck?.test;
  expect(Array.isArray(test), `${name} healthcheck.test is an exec-form list`).toBe(true);
  let rewritten = 0;
  const args = (test as string[]).map((arg) =>
    arg.replace(/(127\.0\.0\.1|localhost):(\d+)\//g, (whole, host: string, port: string) => {
      const mapped = ports.get(port);
      if (!mapped) return whole;
      rewritten++;
      return `${host}:${mapped}/`;
    }),
  );
  expect(rewritten, `${name} healthcheck names one of the service's container ports`).toBe(1);
  return args;
}

/**
 * Runs the healthcheck until it passes, at most every second (compose's start_interval is
 * 5 s), and returns the time from the process's start. Gives up at start_period plus the
 * retries compose would still allow, so a late service is reported with its real time.
 */
async function untilHealthy(proc: ServiceProcess, service: ComposeService, test: string[]): Promise<number> {
  const hc = service.healthcheck!;
  const startPeriod = durationMs(hc.start_period ?? '0s');
  const giveUp = startPeriod + durationMs(hc.interval ?? '30s') * (hc.retries ?? 3);
  const timeout = durationMs(hc.timeout ?? '30s');
  for (;;) {
    if (proc.exit) throw new Error(`${proc.name} exited (${JSON.stringify(proc.exit)}) before it was healthy\n${proc.output()}`);
    const tried = Date.now();
    if (await runHealthcheck(test, proc.env, timeout)) return Date.now() - proc.startedAt;
    if (Date.now() - proc.startedAt > giveUp) throw new Error(`${proc.name} not healthy ${giveUp} ms after its start\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - tried))));
  }
}

/** Splits a documented command line into arguments (plain words and '…' quoting only). */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]);
}

/** pino lines at error (50) or fatal (60). */
const severeLogLines = (stderr: string) => stderr.split('\n').filter((line) => /"level":\s*(50|60)\b/.test(line));

// ---------------------------------------------------------------------------------------------

const compose = interpolateTree(parse(read('docker-compose.yml'), { merge: true }), parseDotenv(read('.env.example')), 'docker-compose.yml') as {
  services: Record<string, ComposeService>;
};
const worker = compose.services.worker;
const serve = compose.services.serve;
const deploymentDoc = read('docs/deployment.md');
const README_RIDE = { PULocationID: 10, DOLocationID: 50, trip_distance: 40 };
const EXAMPLE_MODELS = ['trip-duration', 'fare', 'tip'];

let tmp: string;
let workerEnv: Record<string, string>;
let serveEnv: Record<string, string>;
/** The compose DATABASE_URL, pointed at the test's PostgreSQL. */
let databaseUrl: string;
let pool: Pool | undefined;
/** What this test created in the test's PostgreSQL, to remove afterwards. */
let created: { role?: string; database?: string } = {};
const workers: Array<{ proc: ServiceProcess; ports: Map<string, string> }> = [];
let serveProc: { proc: ServiceProcess; ports: Map<string, string> } | undefined;
const timings: Record<string, number> = {};

/** `docker compose run --rm worker …` environments: the worker's, each in an empty data folder. */
function oneOffEnv(): Record<string, string> {
  return { ...workerEnv, MLDEPLOY_DATA_DIR: fs.mkdtempSync(path.join(tmp, 'run-')) };
}

/** The container's environment: the image's ENV, then the service's, in an empty data folder and home. */
function containerEnv(serviceEnv: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    ...imageEnvironment(read('Dockerfile')),
    // An empty home, as the image's `node` user has: no ~/.config/temporal/temporal.toml of this machine's user.
    HOME: fs.mkdtempSync(path.join(tmp, 'home-')),
    ...serviceEnv,
  };
}

/** Creates the role and database of the compose DATABASE_URL in the test PostgreSQL (the compose postgresql service does it from POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB). */
async function provisionDatabase(adminUrl: string, target: URL): Promise<void> {
  const user = decodeURIComponent(target.username);
  const password = decodeURIComponent(target.password);
  const database = decodeURIComponent(target.pathname.slice(1));
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const role = admin.escapeIdentifier(user);
    if ((await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [user])).rowCount === 0) {
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD ${admin.escapeLiteral(password)}`);
      created.role = user;
    } else {
      await admin.query(`ALTER ROLE ${role} LOGIN PASSWORD ${admin.escapeLiteral(password)}`);
    }
    if ((await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rowCount === 0) {
      await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)} OWNER ${role}`);
      created.database = database;
    }
  } finally {
    await admin.end();
  }
}

async function dropCreated(adminUrl: string): Promise<void> {
  if (!created.database && !created.role) return;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    if (created.database) await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(created.database)} WITH (FORCE)`);
    if (created.role) await admin.query(`DROP ROLE IF EXISTS ${admin.escapeIdentifier(created.role)}`);
  } finally {
    await admin.end();
  }
  created = {};
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-compose-'));
  const adminUrl = inject('databaseUrl');
  const testPostgres = new URL(adminUrl).host;
  const temporalAddress = inject('temporalAddress');
  const workerMapped = await mapNetwork('worker', environmentOf(worker), testPostgres, temporalAddress);
  const serveMapped = await mapNetwork('serve', environmentOf(serve), testPostgres, temporalAddress);
  workerEnv = workerMapped.env;
  serveEnv = serveMapped.env;
  databaseUrl = workerEnv.DATABASE_URL;
  expect(serveEnv.DATABASE_URL).toBe(databaseUrl);
  await provisionDatabase(adminUrl, new URL(databaseUrl));
  pool = createPool(databaseUrl, 4, 'mldeploy-compose-test');
}, 120_000);

afterAll(async () => {
  for (const p of [...workers.map((w) => w.proc), ...(serveProc ? [serveProc.proc] : [])]) if (!p.exit) p.child.kill('SIGKILL');
  await Promise.all([...workers.map((w) => w.proc.exited), ...(serveProc ? [serveProc.proc.exited] : [])]);
  await pool?.end();
  await dropCreated(inject('databaseUrl'));
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  if (Object.keys(timings).length) console.log(`compose-services timings (ms): ${JSON.stringify(timings)}`);
}, 120_000);

describe('compose interpolation (the helper this test relies on)', () => {
  it('implements ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message} and $$ as compose does', () => {
    const vars = new Map([
      ['SET', 'x'],
      ['EMPTY', ''],
    ]);
    expect(interpolate('${SET}/${UNSET}/$SET', vars)).toBe('x//x');
    expect(interpolate('${SET:-d} ${EMPTY:-d} ${UNSET:-d}', vars)).toBe('x d d');
    expect(interpolate('${SET-d} [${EMPTY-d}] ${UNSET-d}', vars)).toBe('x [] d');
    expect(interpolate('${UNSET:-${SET}-y}', vars)).toBe('x-y');
    expect(interpolate('${SET:?m}', vars)).toBe('x');
    expect(() => interpolate('${EMPTY:?set EMPTY please}', vars)).toThrow(/EMPTY is missing a value: set EMPTY please/);
    expect(() => interpolate('${UNSET?m}', vars)).toThrow(/UNSET/);
    expect(interpolate('${EMPTY?m}', vars)).toBe('');
    expect(interpolate('$${pair%%:*} costs $$5', vars)).toBe('${pair%%:*} costs $5');
    expect(parseDotenv('# c\nA=1\nB="two ${A}"\nC=\'${A}\'\nD=three # note\nexport E=${A}${A}\n')).toEqual(
      new Map([
        ['A', '1'],
        ['B', 'two 1'],
        ['C', '${A}'],
        ['D', 'three'],
        ['E', '11'],
      ]),
    );
    expect(durationMs('1m30s')).toBe(90_000);
  });
});

describe('docker-compose.yml worker and serve, run as compose would (no Docker)', () => {
  it('gives each service the environment compose computes from the file and .env.example', () => {
    const env = { worker: environmentOf(worker), serve: environmentOf(serve) };
    const dotenv = parseDotenv(read('.env.example'));
    for (const [name, e] of Object.entries(env)) {
      // The shared block reached both services through the merge key, interpolated.
      expect(e.DATABASE_URL, name).toBe(`postgres://${dotenv.get('POSTGRES_USER')}:${dotenv.get('POSTGRES_PASSWORD')}@${COMPOSE_POSTGRES}/mldeploy`);
      expect(e.TEMPORAL_ADDRESS, name).toBe(COMPOSE_TEMPORAL);
      expect(e.MLDEPLOY_TASK_QUEUE, name).toBe(dotenv.get('MLDEPLOY_TASK_QUEUE'));
      expect(Object.values(e).join(' '), `${name}: no interpolation left over`).not.toContain('${');
      // mldeploy accepts the configuration as the container gets it.
      expect(() => loadConfig(e), name).not.toThrow();
    }
    expect(env.serve.MLDEPLOY_SERVE_MODEL).toBe(dotenv.get('MLDEPLOY_SERVE_MODEL'));
    // Compose starts both once PostgreSQL is healthy and the search attributes are registered:
    // both connect to Temporal and check them at start (serve exits 1 without Temporal). Here
    // the test's PostgreSQL and Temporal dev server (which has them) are up before either starts.
    for (const [name, service] of [
      ['worker', worker],
      ['serve', serve],
    ] as const) {
      expect(service.depends_on, name).toMatchObject({
        postgresql: { condition: 'service_healthy' },
        'temporal-search-attributes': { condition: 'service_completed_successfully' },
      });
    }
    expect(Number(worker.deploy?.replicas), 'WORKER_REPLICAS').toBeGreaterThanOrEqual(2);
    // The mapped environments differ from compose's in the addresses and ports only.
    for (const [name, mapped] of [
      ['worker', workerEnv],
      ['serve', serveEnv],
    ] as const) {
      const changed = Object.keys(mapped).filter((k) => mapped[k] !== env[name][k]);
      expect(changed.sort(), name).toEqual(['DATABASE_URL', 'TEMPORAL_ADDRESS', ...Object.keys(CONTAINER_PORTS[name])].sort());
      expect(Object.keys(mapped).sort(), name).toEqual(Object.keys(env[name]).sort());
    }
  });

  it(`starts the worker replicas and serve; each compose healthcheck passes within its start_period`, async () => {
    const replicas = Number(worker.deploy?.replicas);
    const workerCommand = Array.isArray(worker.command) ? worker.command : words(worker.command ?? '');
    const serveCommand = Array.isArray(serve.command) ? serve.command : words(serve.command ?? '');
    // `docker compose up`: every replica and serve start together, each with its own ports and data folder.
    for (let i = 1; i <= replicas; i++) {
      const { env, ports } = await mapNetwork('worker', environmentOf(worker), new URL(databaseUrl).host, inject('temporalAddress'));
      workers.push({ proc: new ServiceProcess(`worker-${i}`, workerCommand, containerEnv({ ...env, MLDEPLOY_DATA_DIR: fs.mkdtempSync(path.join(tmp, `worker-${i}-`)) })), ports });
    }
    serveProc = {
      proc: new ServiceProcess('serve', serveCommand, containerEnv({ ...serveEnv, MLDEPLOY_DATA_DIR: fs.mkdtempSync(path.join(tmp, 'serve-')) })),
      ports: new Map([[CONTAINER_PORTS.serve.MLDEPLOY_SERVE_PORT, serveEnv.MLDEPLOY_SERVE_PORT]]),
    };

    const all = [...workers.map((w) => ({ ...w, service: worker })), { ...serveProc, service: serve }];
    const healthy = await Promise.all(all.map(({ proc, ports, service }) => untilHealthy(proc, service, healthcheckFor(service, proc.name, ports))));
    for (const [i, { proc, service }] of all.entries()) {
      timings[`${proc.name} healthy`] = healthy[i];
      expect(healthy[i], `${proc.name} healthy after ${healthy[i]} ms; start_period ${service.healthcheck!.start_period}`).toBeLessThanOrEqual(
        durationMs(service.healthcheck!.start_period!),
      );
    }
    for (const { proc } of workers) expect(proc.stdout).toContain(`worker polling ${workerEnv.MLDEPLOY_TASK_QUEUE} on ${inject('temporalAddress')}`);
    expect(serveProc.proc.stdout).toMatch(new RegExp(`web service on http://127\\.0\\.0\\.1:${serveEnv.MLDEPLOY_SERVE_PORT} .*default model ${serveEnv.MLDEPLOY_SERVE_MODEL}`));
    // A healthcheck that can fail: nothing listens on a port of its own.
    const nowhere = healthcheckFor(serve, 'serve', new Map([[CONTAINER_PORTS.serve.MLDEPLOY_SERVE_PORT, String(await freePort())]]));
    expect(await runHealthcheck(nowhere, serveEnv, 5000)).toBe(false);
  }, 300_000);

  let tripDurationVersion: number;

  it('registers the example models as docs/deployment.md says, and POST /predict answers the README ride', async () => {
    // docs/deployment.md: `for m in trip-duration fare tip; do docker compose run --rm worker models register $m …; done`
    const loop = /for m in ([\w -]+); do\n\s*docker compose run --rm worker (models register \$m [^\n]+)\ndone/.exec(deploymentDoc);
    expect(loop, 'the register loop in docs/deployment.md').not.toBeNull();
    expect(loop![1].trim().split(/\s+/)).toEqual(EXAMPLE_MODELS);
    for (const m of EXAMPLE_MODELS) {
      const registered = JSON.parse(await runOk(words(loop![2].replaceAll('$m', m)), oneOffEnv()));
      expect(registered).toMatchObject({ name: m, aliases: ['production'] });
      if (m === 'trip-duration') tripDurationVersion = registered.version;
    }
    const base = `http://127.0.0.1:${serveEnv.MLDEPLOY_SERVE_PORT}`;
    // The service started before the models existed: it loads the default one once it is registered.
    const until = Date.now() + 60_000;
    let ready: Response;
    while ((ready = await fetch(`${base}/readyz`)).status !== 200 && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
    expect(ready.status, `serve /readyz\n${serveProc!.proc.output()}`).toBe(200);
    // docs/deployment.md's curl, with the token of the environment (.env.example leaves it empty).
    expect(deploymentDoc).toContain(`curl -s localhost:9696/predict -H "authorization: Bearer $MLDEPLOY_API_TOKEN"`);
    const res = await fetch(`${base}/predict`, {
      method: 'POST',
      headers: { authorization: `Bearer ${serveEnv.MLDEPLOY_API_TOKEN ?? ''}`, 'content-type': 'application/json' },
      body: JSON.stringify(README_RIDE),
    });
    const body = await res.text();
    expect(res.status, body).toBe(200);
    const answer = JSON.parse(body) as { duration: number; model_version: number };
    expect(answer.model_version).toBe(tripDurationVersion);
    expect(answer.duration).toBeGreaterThan(1);
    expect(answer.duration).toBeLessThan(1000);
  }, 300_000);

  it('scores a window with the CLI on the two worker processes; every row once', async () => {
    const seedLine = /docker compose run --rm worker (data seed [^\n]+)/.exec(deploymentDoc);
    const scoreLine = /docker compose run --rm worker (score [^\n]+)/.exec(deploymentDoc);
    expect(seedLine, 'the seed command in docs/deployment.md').not.toBeNull();
    expect(scoreLine, 'the score command in docs/deployment.md').not.toBeNull();
    const seeded = JSON.parse(await runOk(words(seedLine![1]), oneOffEnv())) as { month: string; rows: number };
    expect(seeded.rows).toBeGreaterThan(0);

    // The documented command, in chunks small enough for the run to spread over both replicas.
    const started = Date.now();
    const summary = JSON.parse(await runOk([...words(scoreLine![1]), '--chunk-size', '2000'], oneOffEnv())) as {
      runId: string;
      job: string;
      window: { from: string; to: string };
      status: string;
      chunks: number;
      rowsRead: number;
      rowsScored: number;
      rowsRejected: number;
      model: { name: string; version: number };
    };
    timings['batch run (CLI, waiting)'] = Date.now() - started;
    expect(summary).toMatchObject({ status: 'succeeded', model: { name: 'trip-duration', version: tripDurationVersion } });

    // Every ride of the window has exactly one outcome of this run: a prediction or a rejection.
    const window = [summary.window.from, summary.window.to];
    const {
      rows: [counts],
    } = await pool!.query(
      `SELECT (SELECT count(*) FROM ride_durations WHERE lpep_pickup_datetime >= $1 AND lpep_pickup_datetime < $2)::int AS rides,
              (SELECT count(*) FROM predictions WHERE run_id = $3)::int AS predicted,
              (SELECT count(DISTINCT entity_id) FROM predictions WHERE run_id = $3)::int AS predicted_distinct,
              (SELECT count(*) FROM rejected_rows WHERE run_id = $3)::int AS rejected,
              (SELECT count(*) FROM ride_durations r WHERE lpep_pickup_datetime >= $1 AND lpep_pickup_datetime < $2
                 AND NOT EXISTS (SELECT 1 FROM predictions p WHERE p.job = $4 AND p.entity_id = r.ride_id AND p.run_id = $3)
                 AND NOT EXISTS (SELECT 1 FROM rejected_rows x WHERE x.job = $4 AND x.entity_id = r.ride_id AND x.run_id = $3))::int AS missed,
              (SELECT count(*) FROM predictions WHERE job = $4 AND run_id <> $3 AND event_time >= $1 AND event_time < $2)::int AS stale`,
      [...window, summary.runId, summary.job],
    );
    expect(counts.rides).toBe(seeded.rows);
    expect(counts).toEqual({ rides: seeded.rows, predicted: summary.rowsScored, predicted_distinct: summary.rowsScored, rejected: summary.rowsRejected, missed: 0, stale: 0 });
    expect(summary.rowsScored + summary.rowsRejected).toBe(seeded.rows);
    expect(summary.rowsScored).toBeGreaterThan(seeded.rows * 0.9);

    // Both replicas scored chunks, and nothing else did.
    const { rows: chunks } = await pool!.query('SELECT scored_by, count(*)::int AS chunks, sum(rows_scored)::int AS rows FROM batch_chunks WHERE run_id = $1 GROUP BY scored_by', [
      summary.runId,
    ]);
    const pids = new Map(chunks.map((c) => [Number(String(c.scored_by).split(':').at(-1)), c.rows as number]));
    expect([...pids.keys()].sort(), JSON.stringify(chunks)).toEqual(workers.map((w) => w.proc.child.pid!).sort());
    expect(chunks.reduce((n, c) => n + c.chunks, 0)).toBe(summary.chunks);
    // Each replica's own /metrics (the compose MLDEPLOY_WORKER_METRICS_PORT) counts its rows.
    for (const { proc, ports } of workers) {
      const text = await (await fetch(`http://127.0.0.1:${ports.get(CONTAINER_PORTS.worker.MLDEPLOY_WORKER_METRICS_PORT)}/metrics`)).text();
      const scored = [...text.matchAll(/^mldeploy_batch_rows_scored_total\{[^}]*job="([^"]+)"[^}]*\} (\S+)$/gm)]
        .filter((m) => m[1] === summary.job)
        .reduce((n, m) => n + Number(m[2]), 0);
      expect(scored, `${proc.name} metrics`).toBeGreaterThanOrEqual(pids.get(proc.child.pid!)!);
      expect(scored).toBeGreaterThan(0);
    }
  }, 420_000);

  it('a ride_started event gets a decision (mldeploy emit --wait, and POST /v1/events?wait=true on serve)', async () => {
    const ride = { PULocationID: 130, DOLocationID: 205, trip_distance: 3.66 };
    type Emitted = { status: string; eventId: string; decision?: { status: string; action: string | null; predictions: Record<string, number>; missing: string[] } };
    const check = (result: Emitted) => {
      expect(result.status, JSON.stringify(result)).toBe('done');
      expect(result.decision).toMatchObject({ status: 'decided', action: expect.any(String) });
      expect(result.decision!.predictions.duration).toEqual(expect.any(Number));
      expect(result.decision!.predictions.fare).toEqual(expect.any(Number));
      expect(result.decision!.missing).not.toContain('duration');
    };

    // The CLI, as README.md shows it, from a one-off container. Emitting the same id again
    // waits again without processing the event twice (the first wait may end while three
    // models load on the workers).
    const cliId = `compose-${randomUUID()}`;
    let emitted: Emitted;
    const until = Date.now() + 120_000;
    do {
      emitted = JSON.parse(await runOk(['emit', 'ride_started', '--id', cliId, '--data', JSON.stringify({ ride, ride_id: 256 }), '--wait'], oneOffEnv()));
    } while (emitted.status === 'pending' && Date.now() < until);
    check(emitted);

    // The web service's event route, on serve's own Temporal connection.
    const base = `http://127.0.0.1:${serveEnv.MLDEPLOY_SERVE_PORT}`;
    const httpId = `compose-${randomUUID()}`;
    let answer: Emitted;
    do {
      const res = await fetch(`${base}/v1/events?wait=true`, {
        method: 'POST',
        headers: { authorization: `Bearer ${serveEnv.MLDEPLOY_API_TOKEN ?? ''}`, 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'ride_started', id: httpId, payload: { ride } }),
      });
      expect(res.status).toBeLessThan(300);
      answer = (await res.json()) as Emitted;
    } while (answer.status === 'pending' && Date.now() < until + 60_000);
    check(answer);

    // Both decisions are in the compose database's decision stream, which serve reads.
    const found = new Set<string>();
    for (let after = 0; ;) {
      const page = (await (
        await fetch(`${base}/v1/streams/decisions?after=${after}&limit=1000`, { headers: { authorization: `Bearer ${serveEnv.MLDEPLOY_API_TOKEN ?? ''}` } })
      ).json()) as {
        records: Array<{ value: { eventId: string } }>;
        next: number;
      };
      for (const r of page.records) found.add(r.value.eventId);
      if (page.records.length === 0) break;
      after = page.next;
    }
    expect(found.has(cliId) && found.has(httpId), [...found].slice(-5).join(', ')).toBe(true);
  }, 420_000);

  it('SIGTERM: every process exits 0 within its stop_grace_period', async () => {
    const all = [...workers.map((w) => ({ proc: w.proc, service: worker })), { proc: serveProc!.proc, service: serve }];
    expect(
      all.every(({ proc }) => proc.exit === undefined),
      'every process still running',
    ).toBe(true);
    // `docker compose stop`: SIGTERM to every container at once (init: true forwards it to node).
    const signalled = Date.now();
    for (const { proc } of all) proc.child.kill('SIGTERM');
    const results = await Promise.all(
      all.map(async ({ proc, service }) => {
        const grace = durationMs(service.stop_grace_period ?? '10s');
        const exit = await Promise.race([proc.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), grace).unref())]);
        return { proc, grace, exit, ms: Date.now() - signalled };
      }),
    );
    for (const { proc, grace, exit, ms } of results) {
      timings[`${proc.name} exit after SIGTERM`] = ms;
      expect(exit, `${proc.name}: no exit within stop_grace_period ${grace} ms\n${proc.output()}`).not.toBe('timeout');
      expect(exit, proc.output()).toEqual({ code: 0, signal: null });
      expect(severeLogLines(proc.stderr), proc.name).toEqual([]);
      expect(proc.stderr, proc.name).not.toMatch(/^error:/m);
    }
    expect(serveProc!.proc.stdout).toContain('SIGTERM: finishing in-flight requests');
  }, 120_000);
});
