// The one model resolver: which version a reference (`name`, `name@alias`, `name@3`)
// names, and which loaded version answers it. Every lane uses it: the web service, batch
// runs, stream planning and consumers, the CLI.
//
// - References are cached. A change in the registry (a promotion, a new version, an alias
//   moved or removed) reaches every process at once: a trigger (migration 007) NOTIFYs
//   'mldeploy_models' with the model's name, and one LISTEN connection per process and
//   database passes it to each resolver, which re-resolves that model's references.
// - Polling is the fallback: every pollMs while the LISTEN connection is down (it reconnects
//   with a backoff, and re-reads everything once it is back), and every SAFETY_POLL_MS while
//   it is up, in case notifications are lost on the way (a pooler that drops them).
// - A loaded reference switches to a new version only once that version has loaded, so a
//   promotion never fails nor slows a request, and each answer comes from one version it can
//   name. resolve() answers the new version at once: planning needs no session.
//
// API (also used by activities/stream-partition.ts):
//   resolver.resolve(ref): Promise<ModelVersion>   the registry's answer (cached; no session)
//   resolver.load(ref): Promise<LoadedModel>       the loaded version serving ref
//   resolver.serve(ref): LoadedModel | Promise<…>  the same, synchronous once loaded (hot path)
//   resolver.get({ name, version }): Promise<LoadedModel>   one pinned version
//   validatorFor(version): FeatureValidator        spec-only payload checks (no session)
import pg from 'pg';
import { log } from '../log.ts';
import type { Pool } from '../db/pool.ts';
import { FeatureMapper, type FeatureRecord, type RecordError } from './features.ts';
import { resolveSpec } from './metadata.ts';
import { formatRef, parseModelRef, type ModelRef } from './refs.ts';
import type { CacheState, LoadedModel, ModelCache } from './runtime.ts';
import { ModelNotFoundError, targetOf, type ModelStore, type ModelVersion } from './store.ts';

/** The NOTIFY channel of migration 007; the payload is the model's name. */
export const MODEL_CHANNEL = 'mldeploy_models';
/** Polling while notifications arrive: only a safety net. */
const SAFETY_POLL_MS = 30_000;
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5_000;

/** An unload of a version the service needs (a required reference serves it). */
export class RequiredModelError extends Error {
  override name = 'RequiredModelError';
}

export interface ModelId {
  name: string;
  version: number;
}

// ---------------------------------------------------------------------------------------
// Spec-only feature validation

/**
 * Checks records against one version's feature spec and model metadata (fields, dtypes,
 * derived features) exactly as the model's own mapper would, without an onnxruntime session.
 */
export class FeatureValidator {
  readonly model: ModelId;
  readonly mapper: FeatureMapper;

  constructor(version: Pick<ModelVersion, 'name' | 'version' | 'spec' | 'metadata'>) {
    this.model = { name: version.name, version: version.version };
    this.mapper = new FeatureMapper(resolveSpec(version.spec, version.metadata), version.metadata);
  }

  /** The errors of one record (empty when the model accepts it); reasons start with the field. */
  check(record: FeatureRecord): RecordError[] {
    return this.mapper.check([record]);
  }

  /** The errors of many records, with their positions. */
  checkMany(records: readonly FeatureRecord[]): RecordError[] {
    return this.mapper.check(records);
  }

  /** The record fields the model reads. */
  requiredFields(): string[] {
    return this.mapper.requiredFields();
  }
}

const VALIDATORS_KEPT = 512;
const validators = new Map<string, FeatureValidator>();

/** The (cached) validator of a registered version; versions are immutable, so it never goes stale. */
export function validatorFor(version: Pick<ModelVersion, 'name' | 'version' | 'sha256' | 'spec' | 'metadata'>): FeatureValidator {
  const key = `${version.name}@${version.version}:${version.sha256}`;
  let validator = validators.get(key);
  if (!validator) {
    validator = new FeatureValidator(version);
    if (validators.size >= VALIDATORS_KEPT) validators.delete(validators.keys().next().value!);
    validators.set(key, validator);
  }
  return validator;
}

/** The feature mapper of a registered version, built from its spec and metadata alone. */
export function mapperFor(version: Pick<ModelVersion, 'name' | 'version' | 'sha256' | 'spec' | 'metadata'>): FeatureMapper {
  return validatorFor(version).mapper;
}

// ---------------------------------------------------------------------------------------
// Registry change notifications: one LISTEN connection per process and database

interface FeedListener {
  changed(name: string): void;
  connected(): void;
  lost(): void;
}

class ChangeFeed {
  private readonly listeners = new Set<FeedListener>();
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private backoff = RECONNECT_MIN_MS;
  isConnected = false;

  constructor(
    private readonly key: string,
    private readonly config: pg.ClientConfig,
  ) {}

  add(listener: FeedListener): void {
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.connect();
    else if (this.isConnected) listener.connected();
  }

  remove(listener: FeedListener): void {
    this.listeners.delete(listener);
    if (this.listeners.size > 0) return;
    feeds.delete(this.key);
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    this.isConnected = false;
    client?.end().catch(() => {});
  }

  private connect(): void {
    this.timer = undefined;
    if (this.listeners.size === 0) return;
    const client = new pg.Client({ ...this.config, application_name: 'mldeploy-model-listener' });
    this.client = client;
    const lost = () => this.lost(client);
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (message) => {
      if (message.channel !== MODEL_CHANNEL || !message.payload) return;
      for (const l of this.listeners) l.changed(message.payload);
    });
    client
      .connect()
      .then(async () => {
        // The listener must never keep a process alive on its own.
        (client as unknown as { connection?: { stream?: { unref?: () => void } } }).connection?.stream?.unref?.();
        await client.query(`LISTEN ${MODEL_CHANNEL}`);
        if (this.client !== client) return;
        this.isConnected = true;
        this.backoff = RECONNECT_MIN_MS;
        for (const l of this.listeners) l.connected();
      })
      .catch(lost);
  }

  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => {});
    if (this.isConnected) {
      this.isConnected = false;
      log.warn('model change notifications lost; polling the registry until the LISTEN connection is back');
      for (const l of this.listeners) l.lost();
    }
    if (this.listeners.size === 0) return;
    this.timer = setTimeout(() => this.connect(), this.backoff).unref();
    this.backoff = Math.min(this.backoff * 2, RECONNECT_MAX_MS);
  }

  /** Drops the connection as a network failure would (tests). */
  breakConnection(): void {
    const client = this.client;
    if (!client) return;
    (client as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream?.destroy?.();
  }
}

const feeds = new Map<string, ChangeFeed>();

function feedFor(pool: Pool): ChangeFeed {
  const { connectionString, host, port, database, user, password, options, ssl } = pool.options;
  const key = JSON.stringify([connectionString, host, port, database, user]);
  let feed = feeds.get(key);
  if (!feed) {
    feed = new ChangeFeed(key, { connectionString, host, port, database, user, password, options, ssl });
    feeds.set(key, feed);
  }
  return feed;
}

// ---------------------------------------------------------------------------------------
// The resolver

interface Entry {
  reference: string;
  ref: ModelRef;
  /** What the registry says the reference names now. */
  version?: ModelVersion;
  refreshing?: Promise<ModelVersion>;
  /** A notification arrived while refreshing: go again. */
  again: boolean;
  /** The loaded version answering load() and serve(). */
  serving?: LoadedModel;
  loading?: Promise<LoadedModel>;
  /** Kept loaded and current (load() succeeded on it, or it is required). */
  keep: boolean;
  /** Required for readiness: retried while missing. */
  required: boolean;
  /** Said once that it is missing, not on every poll. */
  warned?: boolean;
}

export interface ResolverOptions {
  /** Polling interval while the LISTEN connection is down (MLDEPLOY_SERVE_ALIAS_POLL_MS). */
  pollMs?: number;
  /** Listen for registry notifications (default true). */
  listen?: boolean;
}

export class ModelResolver {
  private readonly entries = new Map<string, Entry>();
  private readonly versions = new Map<string, Promise<ModelVersion>>();
  private pollMs: number;
  private readonly listen: boolean;
  private started = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private feed: ChangeFeed | undefined;
  private readonly listener: FeedListener = {
    changed: (name) => this.changed(name),
    connected: () => {
      // Whatever changed while nobody listened is read now.
      void this.poll();
      this.schedule();
    },
    lost: () => this.schedule(),
  };

  constructor(
    private readonly store: ModelStore,
    private readonly models: ModelCache,
    options: ResolverOptions = {},
  ) {
    this.pollMs = options.pollMs ?? 1_000;
    this.listen = options.listen ?? true;
  }

  /** Sets the fallback polling interval (the web service's MLDEPLOY_SERVE_ALIAS_POLL_MS). */
  setPollInterval(ms: number): void {
    this.pollMs = ms;
    if (this.started && !this.stopped) this.schedule();
  }

  /** True while registry notifications arrive (polling is only the safety net then). */
  get listening(): boolean {
    return this.feed?.isConnected ?? false;
  }

  /**
   * The version `reference` names now. Cached; a pending re-resolution after a change is
   * awaited, so a promotion applies from the moment it is heard. Throws RefError or
   * ModelNotFoundError (as a rejected promise).
   */
  resolve(reference: string): Promise<ModelVersion> {
    const entry = this.entries.get(reference);
    if (entry) {
      if (entry.refreshing) return entry.refreshing;
      if (entry.version) return Promise.resolve(entry.version);
    }
    let ref: ModelRef;
    try {
      ref = parseModelRef(reference);
    } catch (err) {
      return Promise.reject(err);
    }
    if (ref.version !== undefined) return this.versionObject(ref.name, ref.version);
    return this.refresh(entry ?? this.track(reference, ref));
  }

  /** The loaded version answering `reference`; see serve(). */
  async load(reference: string): Promise<LoadedModel> {
    return this.serve(reference);
  }

  /**
   * The loaded version answering `reference`: synchronous once loaded (the web service's hot
   * path awaits no query). After a promotion it is the previous version until the new one
   * has loaded.
   */
  serve(reference: string): LoadedModel | Promise<LoadedModel> {
    const entry = this.entries.get(reference);
    if (entry?.serving) return entry.serving;
    return this.firstLoad(reference, entry);
  }

  /** One pinned version, loaded (sessions are cached per process and version). */
  get(id: ModelId): Promise<LoadedModel> {
    return this.models.get(id);
  }

  /** Whether the version `reference` names now is loaded in this process; resolves it, never loads it (v2 model readiness). */
  async isLoaded(reference: string): Promise<{ name: string; version: number; loaded: boolean }> {
    const version = await this.resolve(reference);
    return { name: version.name, version: version.version, loaded: this.states().get(`${version.name}@${version.version}`) === 'READY' };
  }

  /** The versions loading or loaded in this process, by `name@version` (the v2 repository index). */
  states(): Map<string, CacheState> {
    const states = this.models.states();
    // A version a reference serves is loaded here, even once the cache's idle sweep has dropped it.
    for (const { serving } of this.entries.values()) if (serving) states.set(`${serving.name}@${serving.version}`, 'READY');
    return states;
  }

  /** Loads a version and keeps it loaded until unload() (the v2 repository extension's load). */
  pin(id: ModelId): Promise<LoadedModel> {
    return this.models.pin(id);
  }

  /**
   * Releases a version in this process (the v2 repository extension's unload): references it
   * serves load afresh on their next use. Refused for a version a required reference (readiness)
   * serves. Returns whether it was loaded.
   */
  unload(id: ModelId): boolean {
    const serving = [...this.entries.values()].filter((e) => e.serving?.name === id.name && e.serving.version === id.version);
    const required = serving.find((e) => e.required);
    if (required) throw new RequiredModelError(`model ${id.name} version ${id.version} serves ${required.reference}, which this service needs to be ready; it stays loaded`);
    for (const entry of serving) this.forget(entry);
    return this.models.unload(id) || serving.length > 0;
  }

  /** The spec-only validator of the version `reference` names now. */
  async validator(reference: string): Promise<FeatureValidator> {
    return validatorFor(await this.resolve(reference));
  }

  /** References that must be loaded for ready(); they are loaded now and retried while missing. */
  async require(references: readonly string[]): Promise<void> {
    for (const reference of references) {
      const ref = parseModelRef(reference);
      const entry = this.entries.get(reference) ?? this.track(reference, ref);
      entry.required = true;
      entry.keep = true;
    }
    await Promise.all(references.map((r) => this.tryLoad(r)));
  }

  /** True once every required reference has a loaded version. */
  ready(): boolean {
    for (const entry of this.entries.values()) if (entry.required && !entry.serving) return false;
    return true;
  }

  /** The version loaded for each kept reference, for /readyz. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [reference, entry] of this.entries) if (entry.serving) out[reference] = entry.serving.version;
    return out;
  }

  /** Starts listening and polling; called on first use, and by the web service at start-up. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    if (this.listen && this.store.pool) {
      this.feed = feedFor(this.store.pool);
      this.feed.add(this.listener);
    }
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.feed?.remove(this.listener);
    this.feed = undefined;
    await this.polling;
  }

  /** Drops the LISTEN connection as a network failure would; it reconnects (tests). */
  breakListener(): void {
    this.feed?.breakConnection();
  }

  /** Re-reads every tracked reference from the registry now (one query). */
  async poll(): Promise<void> {
    if (this.polling) return this.polling;
    this.polling = this.pollOnce()
      .catch((err) => log.warn({ err: (err as Error).message }, 'model registry poll failed; serving the versions already loaded'))
      .finally(() => (this.polling = undefined));
    return this.polling;
  }

  // -------------------------------------------------------------------------------------

  private track(reference: string, ref: ModelRef): Entry {
    this.start();
    const entry: Entry = { reference, ref, again: false, keep: false, required: false };
    this.entries.set(reference, entry);
    return entry;
  }

  private forget(entry: Entry): void {
    if (this.entries.get(entry.reference) === entry) this.entries.delete(entry.reference);
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    const interval = this.listening ? Math.max(this.pollMs, SAFETY_POLL_MS) : this.pollMs;
    this.timer = setTimeout(() => {
      void this.poll().finally(() => this.schedule());
    }, interval).unref();
  }

  private changed(name: string): void {
    for (const entry of this.entries.values()) {
      if (entry.ref.name !== name) continue;
      if (entry.keep && !entry.version) void this.tryLoad(entry.reference);
      else this.refresh(entry).catch(() => {});
    }
  }

  private async pollOnce(): Promise<void> {
    const names = [...new Set([...this.entries.values()].map((e) => e.ref.name))];
    if (names.length === 0) return;
    const heads = await this.store.heads(names);
    for (const entry of [...this.entries.values()]) {
      const target = targetOf(entry.ref, heads.get(entry.ref.name));
      if (target === undefined) {
        if (entry.version) this.refresh(entry).catch(() => {});
        continue;
      }
      if (target !== entry.version?.version) {
        if (entry.keep && !entry.version) void this.tryLoad(entry.reference);
        else this.refresh(entry).catch(() => {});
      } else if (entry.keep && !entry.serving && !entry.loading) {
        void this.tryLoad(entry.reference);
      } else {
        // A switch whose load failed is tried again.
        this.switchTo(entry);
      }
    }
  }

  private versionObject(name: string, version: number): Promise<ModelVersion> {
    const key = `${name}@${version}`;
    let found = this.versions.get(key);
    if (!found) {
      found = this.store.get(name, version);
      found.catch(() => this.versions.get(key) === found && this.versions.delete(key));
      this.versions.set(key, found);
    }
    return found;
  }

  /** Resolves the entry again; concurrent calls share one pass, and a change heard meanwhile causes another. */
  private refresh(entry: Entry): Promise<ModelVersion> {
    if (entry.refreshing) {
      entry.again = true;
      return entry.refreshing;
    }
    const run = async (): Promise<ModelVersion> => {
      for (;;) {
        entry.again = false;
        let version: ModelVersion;
        try {
          const head = (await this.store.heads([entry.ref.name])).get(entry.ref.name);
          const target = targetOf(entry.ref, head);
          if (target === undefined) throw new ModelNotFoundError(`model ${formatRef(entry.ref)} does not exist${entry.ref.alias ? '' : ' (no versions registered)'}`);
          version = await this.versionObject(entry.ref.name, target);
        } catch (err) {
          if (entry.again) continue;
          if (err instanceof ModelNotFoundError) {
            if (entry.version) log.warn({ model: entry.reference }, 'model reference no longer resolves');
            entry.version = undefined;
            entry.serving = undefined;
            if (!entry.required) this.forget(entry);
            throw err;
          }
          // The registry is unreachable: keep answering with what was known.
          if (entry.version) return entry.version;
          if (!entry.keep) this.forget(entry);
          throw err;
        }
        if (entry.again) continue;
        this.settle(entry, version);
        return version;
      }
    };
    const refreshing = run().finally(() => {
      if (entry.refreshing === refreshing) entry.refreshing = undefined;
    });
    entry.refreshing = refreshing;
    return refreshing;
  }

  private settle(entry: Entry, version: ModelVersion): void {
    const previous = entry.version;
    entry.version = version;
    entry.warned = false;
    if (previous?.version !== version.version) this.switchTo(entry);
  }

  /** Loads the version the entry names completely, then switches to it: requests go on with the old one meanwhile. */
  private switchTo(entry: Entry): void {
    const version = entry.version;
    if (!version || !entry.serving || entry.serving.version === version.version) return;
    const from = entry.serving.version;
    this.models.get(version).then(
      (model) => {
        if (entry.version?.version !== model.version || !entry.serving || entry.serving.version === model.version) return;
        entry.serving = model;
        log.info({ model: entry.reference, from, to: model.version }, 'switched model version');
      },
      (err) => log.error({ model: entry.reference, version: version.version, err: (err as Error).message }, 'cannot load the new version; still serving the previous one'),
    );
  }

  private firstLoad(reference: string, entry: Entry | undefined): Promise<LoadedModel> {
    if (!entry) {
      let ref: ModelRef;
      try {
        ref = parseModelRef(reference);
      } catch (err) {
        return Promise.reject(err);
      }
      // A pinned version never changes: the session cache is all it needs.
      if (ref.version !== undefined) return this.models.get({ name: ref.name, version: ref.version });
      entry = this.track(reference, ref);
    }
    if (entry.loading) return entry.loading;
    const target = entry;
    const loading = (async () => {
      const version = await this.resolve(reference);
      const model = await this.models.get(version);
      target.keep = true;
      if (!target.serving && this.entries.get(reference) === target) {
        target.serving = model;
        // A change heard while this one loaded: switch to it once it has loaded too.
        this.switchTo(target);
      }
      return target.serving ?? model;
    })();
    target.loading = loading;
    loading.then(
      () => (target.loading = undefined),
      () => {
        target.loading = undefined;
        if (!target.keep && !target.serving) this.forget(target);
      },
    );
    return loading;
  }

  private async tryLoad(reference: string): Promise<void> {
    const entry = this.entries.get(reference);
    try {
      await this.serve(reference);
      if (entry) entry.warned = false;
    } catch (err) {
      if (entry?.required && !entry.warned) {
        entry.warned = true;
        log.warn({ model: reference, err: (err as Error).message }, 'model not available yet; retrying');
      }
    }
  }
}
