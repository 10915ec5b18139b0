// The model registry in PostgreSQL: immutable versions (bytes, sha256, metadata, spec,
// metrics) and movable aliases.
import type { Pool } from '../db/pool.ts';
import type { ModelMetadata } from './metadata.ts';
import type { FeatureSpec } from './spec.ts';
import { DEFAULT_ALIAS, formatRef, parseModelRef, validateAlias, validateModelName, type ModelRef } from './refs.ts';

export interface ModelVersion {
  name: string;
  version: number;
  sha256: string;
  sizeBytes: number;
  metadata: ModelMetadata;
  spec: FeatureSpec;
  metrics: Record<string, number>;
  aliases: string[];
  createdAt: string;
  /** Where the version came from, when it was imported (an MLflow model: src/mlflow/import.ts). */
  provenance?: ModelProvenance;
}

/** Provenance of an imported version; `key` identifies the source, so importing it again under the same name stores nothing. */
export type ModelProvenance = { key: string } & Record<string, unknown>;

export interface ModelHead {
  latest: number;
  aliases: Record<string, number>;
}

/** The version a reference names, given its model's head; undefined when it names none. */
export function targetOf(ref: ModelRef, head: ModelHead | undefined): number | undefined {
  if (ref.version !== undefined) return ref.version;
  if (!head) return undefined;
  return ref.alias ? head.aliases[ref.alias] : (head.aliases[DEFAULT_ALIAS] ?? head.latest);
}

/** A version that cannot be deleted: an alias points at it, or it is the latest. */
export class ModelInUseError extends Error {
  override name = 'ModelInUseError';
}

export class ModelNotFoundError extends Error {
  override name = 'ModelNotFoundError';
}

const COLUMNS = `v.name, v.version, v.sha256, v.size_bytes, v.inputs, v.outputs, v.spec, v.metrics, v.created_at, v.provenance,
  COALESCE((SELECT array_agg(a.alias ORDER BY a.alias) FROM model_aliases a WHERE a.name = v.name AND a.version = v.version), '{}') AS aliases`;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a pg row: its columns are typed by the query above
function toVersion(row: Record<string, any>): ModelVersion {
  return {
    name: row.name,
    version: row.version,
    sha256: row.sha256,
    sizeBytes: row.size_bytes,
    metadata: { inputs: row.inputs, outputs: row.outputs },
    spec: row.spec,
    metrics: row.metrics,
    aliases: row.aliases,
    createdAt: new Date(row.created_at).toISOString(),
    ...(row.provenance ? { provenance: row.provenance } : {}),
  };
}

export class ModelStore {
  /** Also where the model resolver opens its LISTEN connection (src/registry/resolver.ts). */
  constructor(readonly pool: Pool) {}

  /**
   * Stores a new version (the next number for that name) and, optionally, points an alias at it.
   * A version with the provenance key of one already stored under the name is not stored
   * again: that one is returned (created: false), with the alias moved to it.
   */
  async insert(v: {
    name: string;
    bytes: Uint8Array;
    sha256: string;
    metadata: ModelMetadata;
    spec: FeatureSpec;
    metrics: Record<string, number>;
    alias?: string;
    provenance?: ModelProvenance;
  }): Promise<ModelVersion & { created: boolean }> {
    validateModelName(v.name);
    if (v.alias) validateAlias(v.alias);
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // Serialise registrations of one name, so two of them never pick the same number.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [v.name]);
      const stored = v.provenance ? await findByKey(client, v.name, v.provenance.key) : undefined;
      if (stored !== undefined) {
        if (v.alias) await setAlias(client, v.name, v.alias, stored);
        await client.query('COMMIT');
        return { ...(await this.get(v.name, stored)), created: false };
      }
      const { rows } = await client.query('SELECT COALESCE(max(version), 0) + 1 AS next FROM model_versions WHERE name = $1', [v.name]);
      const version = rows[0].next as number;
      await client.query(
        `INSERT INTO model_versions (name, version, sha256, size_bytes, onnx, inputs, outputs, spec, metrics, provenance)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          v.name,
          version,
          v.sha256,
          v.bytes.byteLength,
          Buffer.from(v.bytes),
          JSON.stringify(v.metadata.inputs),
          JSON.stringify(v.metadata.outputs),
          JSON.stringify(v.spec),
          JSON.stringify(v.metrics),
          v.provenance ? JSON.stringify(v.provenance) : null,
        ],
      );
      if (v.alias) await setAlias(client, v.name, v.alias, version);
      await client.query('COMMIT');
      return { ...(await this.get(v.name, version)), created: true };
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    } finally {
      client.release();
    }
  }

  /** The version stored under a name with this provenance key, if any. */
  async findByProvenance(name: string, key: string): Promise<ModelVersion | undefined> {
    const version = await findByKey(this.pool, name, key);
    return version === undefined ? undefined : this.get(name, version);
  }

  async promote(name: string, version: number, alias: string): Promise<ModelVersion> {
    validateAlias(alias);
    await this.get(name, version);
    await setAlias(this.pool, name, alias, version);
    return this.get(name, version);
  }

  /**
   * Deletes one version and its reference profile. Refused while an alias points at it, and
   * for the latest version: the next number is max + 1, so deleting the latest would hand its
   * number to a different model (caches and logs key on name@version).
   */
  async delete(reference: string): Promise<ModelVersion> {
    const target = await this.resolve(reference);
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // The name's versions and aliases, locked against a concurrent register or promote.
      const { rows } = await client.query('SELECT max(version) AS latest FROM (SELECT version FROM model_versions WHERE name = $1 FOR UPDATE) v', [target.name]);
      const aliases = await client.query('SELECT alias FROM model_aliases WHERE name = $1 AND version = $2 ORDER BY alias FOR UPDATE', [target.name, target.version]);
      const ref = `${target.name}@${target.version}`;
      if (aliases.rows.length > 0)
        throw new ModelInUseError(`${ref} is what ${aliases.rows.map((r) => `${target.name}@${r.alias}`).join(', ')} points at: promote another version first`);
      if (rows[0].latest === target.version) throw new ModelInUseError(`${ref} is the latest version of ${target.name}, which is never deleted (its number would be reused)`);
      await client.query('DELETE FROM model_profiles WHERE name = $1 AND version = $2', [target.name, target.version]);
      await client.query('DELETE FROM model_versions WHERE name = $1 AND version = $2', [target.name, target.version]);
      await client.query('COMMIT');
      return target;
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    } finally {
      client.release();
    }
  }

  async get(name: string, version: number): Promise<ModelVersion> {
    const { rows } = await this.pool.query(`SELECT ${COLUMNS} FROM model_versions v WHERE v.name = $1 AND v.version = $2`, [name, version]);
    if (!rows[0]) throw new ModelNotFoundError(`model ${name}@${version} does not exist`);
    return toVersion(rows[0]);
  }

  /**
   * Resolves a reference (string or parsed) to one concrete version, uncached. Processes that
   * serve or plan use the cached ModelResolver (resolver.ts); both follow targetOf's rule.
   */
  async resolve(reference: string | ModelRef): Promise<ModelVersion> {
    const ref = typeof reference === 'string' ? parseModelRef(reference) : reference;
    const target = ref.version !== undefined ? ref.version : targetOf(ref, (await this.heads([ref.name])).get(ref.name));
    if (target === undefined) throw new ModelNotFoundError(`model ${formatRef(ref)} does not exist${ref.alias ? '' : ' (no versions registered)'}`);
    return this.get(ref.name, target);
  }

  /**
   * What references to these models point at now, in one query: each name's latest version
   * and its aliases. Names without versions are absent. The model resolver polls this.
   */
  async heads(names: readonly string[]): Promise<Map<string, ModelHead>> {
    const { rows } = await this.pool.query(
      `SELECT v.name, max(v.version) AS latest,
              (SELECT jsonb_object_agg(a.alias, a.version) FROM model_aliases a WHERE a.name = v.name) AS aliases
       FROM model_versions v WHERE v.name = ANY($1) GROUP BY v.name`,
      [names],
    );
    return new Map(rows.map((r) => [r.name as string, { latest: r.latest as number, aliases: (r.aliases ?? {}) as Record<string, number> }]));
  }

  /** The version numbers of one model, ascending. */
  async versionNumbers(name: string): Promise<number[]> {
    const { rows } = await this.pool.query('SELECT version FROM model_versions WHERE name = $1 ORDER BY version', [name]);
    return rows.map((r) => r.version as number);
  }

  async bytes(name: string, version: number): Promise<Buffer> {
    const { rows } = await this.pool.query('SELECT onnx FROM model_versions WHERE name = $1 AND version = $2', [name, version]);
    if (!rows[0]) throw new ModelNotFoundError(`model ${name}@${version} does not exist`);
    return rows[0].onnx as Buffer;
  }

  async list(): Promise<ModelVersion[]> {
    const { rows } = await this.pool.query(`SELECT ${COLUMNS} FROM model_versions v ORDER BY v.name, v.version`);
    return rows.map(toVersion);
  }
}

async function findByKey(db: Pick<Pool, 'query'>, name: string, key: string): Promise<number | undefined> {
  const { rows } = await db.query(`SELECT version FROM model_versions WHERE name = $1 AND provenance->>'key' = $2`, [name, key]);
  return rows[0]?.version as number | undefined;
}

async function setAlias(db: Pick<Pool, 'query'>, name: string, alias: string, version: number): Promise<void> {
  await db.query(
    `INSERT INTO model_aliases (name, alias, version) VALUES ($1, $2, $3)
     ON CONFLICT (name, alias) DO UPDATE SET version = EXCLUDED.version, updated_at = now()`,
    [name, alias, version],
  );
}
