// The fault suite's own services, which it may stop and start again: a Temporal dev server
// with a persistent SQLite file and an embedded PostgreSQL with a persistent data folder,
// each restarted on the same port, so clients and workers keep their addresses.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { loadConfig } from '../../src/config.ts';
import { createPool, type Pool } from '../../src/db/pool.ts';
import { migrate } from '../../src/db/migrate.ts';
import { freePort } from '../../src/stack/ports.ts';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/stack/postgres.ts';
import { findTemporalCli, INSTALL_HINT } from '../../src/stack/temporal-cli.ts';
import { startDevServer, type RunningTemporal } from '../../src/stack/temporal-server.ts';

export interface FaultStack {
  dir: string;
  databaseUrl: string;
  temporalAddress: string;
  /** The suite's own pool (application name mldeploy-faults), for seeding and checks. */
  pool: Pool;
  client: Client;
  stopPostgres(): Promise<void>;
  startPostgres(): Promise<void>;
  stopTemporal(): Promise<void>;
  startTemporal(): Promise<void>;
  close(): Promise<void>;
}

export async function openFaultStack(): Promise<FaultStack> {
  const config = loadConfig();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mldeploy-faults-'));
  fs.chmodSync(dir, 0o755); // the embedded server runs as the postgres user when we are root
  // The CLI comes from the project's cache (or PATH), never downloaded into the temp folder.
  const binary = await findTemporalCli({ cliPath: config.temporal.cliPath, dataDir: config.dataDir });
  if (!binary) throw new Error(`the fault suite restarts its own Temporal dev server and needs the Temporal CLI.\n${INSTALL_HINT}`);

  const [pgPort, temporalPort] = [await freePort(), await freePort()];
  const temporalOptions = { dataDir: path.join(dir, 'temporal'), cliPath: binary, port: temporalPort, uiPort: 0, persistent: true };
  let postgres: RunningPostgres | undefined = await startEmbeddedPostgres(dir, pgPort);
  let temporal: RunningTemporal | undefined = await startDevServer(temporalOptions);
  const pool = createPool(postgres.url, 10, 'mldeploy-faults');
  await migrate(pool);
  const connection = await Connection.connect({ address: temporal.address });

  return {
    dir,
    databaseUrl: postgres.url,
    temporalAddress: temporal.address,
    pool,
    client: new Client({ connection }),
    async stopPostgres() {
      await postgres?.stop();
      postgres = undefined;
    },
    async startPostgres() {
      postgres ??= await startEmbeddedPostgres(dir, pgPort);
    },
    async stopTemporal() {
      await temporal?.stop();
      temporal = undefined;
    },
    async startTemporal() {
      temporal ??= await startDevServer(temporalOptions);
    },
    async close() {
      await connection.close();
      await pool.end();
      await temporal?.stop();
      await postgres?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
