// The running environment of one mldeploy process: a PostgreSQL URL and, when asked for,
// a Temporal connection. Configured services are used as they are; otherwise the embedded
// ones are started. A process that starts embedded services publishes them in
// <data dir>/stack.json, so every other mldeploy command reuses them instead of starting a
// second stack on the same files.
//
// The Temporal SDK is loaded only when a command uses Temporal: loading it costs about a
// second, which commands such as `predict` need not pay.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import type * as EnvConfig from '@temporalio/envconfig';
import { temporalEnvironment, type Config } from '../config.ts';
import { isProcessAlive } from './ports.ts';
import { migrate } from '../db/migrate.ts';
import { createPool, type Pool } from '../db/pool.ts';

const require = createRequire(import.meta.url);

export interface TemporalTarget {
  /** Options for Connection.connect / NativeConnection.connect. */
  connectionOptions: { address: string; tls?: unknown; apiKey?: string; metadata?: Record<string, string> };
  namespace: string;
  uiUrl?: string;
  /** True for the local dev server (mldeploy registered the search attributes itself). */
  local: boolean;
}

interface PublishedStack {
  pid: number;
  databaseUrl: string;
  temporalAddress?: string;
  uiUrl?: string;
}

export interface Stack {
  config: Config;
  databaseUrl: string;
  pool: Pool;
  temporal?: TemporalTarget;
  /** True when this process started the embedded services (it owns their lifetime). */
  owner: boolean;
  client(): Promise<Client>;
  nativeConnection(): Promise<NativeConnection>;
  close(): Promise<void>;
}

const stackFile = (config: Config) => path.join(config.dataDir, 'stack.json');

export function readPublishedStack(config: Config): PublishedStack | null {
  try {
    const published = JSON.parse(fs.readFileSync(stackFile(config), 'utf8')) as PublishedStack;
    return isProcessAlive(published.pid) ? published : null;
  } catch {
    return null;
  }
}

export function externalTemporal(): TemporalTarget {
  const { loadClientConnectConfig } = require('@temporalio/envconfig') as typeof EnvConfig;
  const { connectionOptions, namespace } = loadClientConnectConfig({ overrideEnvVars: temporalEnvironment() });
  return {
    connectionOptions: connectionOptions as TemporalTarget['connectionOptions'],
    namespace: namespace ?? 'default',
    local: false,
  };
}

export async function openStack(config: Config, needs: { temporal: boolean }): Promise<Stack> {
  const published = readPublishedStack(config);
  const stops: Array<() => Promise<void>> = [];
  let owner = false;

  let databaseUrl = config.databaseUrl ?? published?.databaseUrl;
  let temporal: TemporalTarget | undefined;
  let pool: Pool | undefined;
  // A start that fails half-way stops what it started: a Temporal dev server left behind
  // holds its port, and the next `mldeploy dev` could not start.
  try {
    if (!databaseUrl) {
      // Loaded only when needed: the embedded server brings its own binaries.
      const { startEmbeddedPostgres } = await import('./postgres.ts');
      const pg = await startEmbeddedPostgres(config.dataDir);
      stops.push(pg.stop);
      databaseUrl = pg.url;
      owner = true;
    }

    // Commands that do not use Temporal do not resolve it.
    if (needs.temporal && config.temporal.external) {
      temporal = externalTemporal();
    } else if (needs.temporal && published?.temporalAddress) {
      temporal = { connectionOptions: { address: published.temporalAddress }, namespace: 'default', uiUrl: published.uiUrl, local: true };
    } else if (needs.temporal) {
      const { startDevServer } = await import('./temporal-server.ts');
      const server = await startDevServer({ dataDir: config.dataDir, cliPath: config.temporal.cliPath, port: config.temporal.port, uiPort: config.temporal.uiPort });
      stops.push(server.stop);
      temporal = { connectionOptions: { address: server.address }, namespace: 'default', uiUrl: server.uiUrl, local: true };
      owner = true;
    }

    pool = createPool(databaseUrl);
    await migrate(pool);
  } catch (err) {
    await pool?.end().catch(() => {});
    for (const stop of stops.reverse()) await stop().catch(() => {});
    throw err;
  }

  if (owner) {
    const publish: PublishedStack = { pid: process.pid, databaseUrl, temporalAddress: temporal?.local ? temporal.connectionOptions.address : undefined, uiUrl: temporal?.uiUrl };
    fs.writeFileSync(stackFile(config), JSON.stringify(publish, null, 2));
  }

  let client: Promise<Client> | undefined;
  let native: Promise<NativeConnection> | undefined;
  const requireTemporal = () => {
    if (!temporal) throw new Error('this command needs Temporal, but the stack was opened without it');
    return temporal;
  };

  const stack: Stack = {
    config,
    databaseUrl,
    pool,
    temporal,
    owner,
    client() {
      client ??= (async () => {
        const t = requireTemporal();
        const { Client, Connection } = await import('@temporalio/client');
        const connection = await Connection.connect(t.connectionOptions as Parameters<typeof Connection.connect>[0]);
        return new Client({ connection, namespace: t.namespace });
      })();
      return client;
    },
    nativeConnection() {
      native ??= (async () => {
        // Before the first native connection creates the SDK's runtime: its logs go to ours.
        const [{ installTemporalLogging }, { NativeConnection }] = await Promise.all([import('../temporal-logging.ts'), import('@temporalio/worker')]);
        installTemporalLogging();
        return NativeConnection.connect(requireTemporal().connectionOptions as Parameters<typeof NativeConnection.connect>[0]);
      })();
      return native;
    },
    async close() {
      if (client) await (await client).connection.close();
      if (native) await (await native).close();
      await pool.end();
      if (owner) fs.rmSync(stackFile(config), { force: true });
      for (const stop of stops.reverse()) await stop();
    },
  };
  // A cluster mldeploy did not start must have its search attributes registered already.
  if (needs.temporal && temporal && !temporal.local) {
    try {
      const { checkSearchAttributes } = await import('./search-attributes-check.ts');
      await checkSearchAttributes(await stack.client(), temporal.namespace);
    } catch (err) {
      await stack.close();
      throw err;
    }
  }
  return stack;
}
