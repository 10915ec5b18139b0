// Which loaded version answers each model reference, kept current without a restart.
// Alias and bare references are re-resolved by polling the registry; a newly promoted
// version is loaded completely before requests switch to it, so a promotion never fails
// a request, and every request is answered by exactly one version that it can name.
import type { Pool } from '../db/pool.ts';
import { log } from '../log.ts';
import { DEFAULT_ALIAS, parseModelRef, type ModelRef } from '../registry/refs.ts';
import type { LoadedModel, ModelCache } from '../registry/runtime.ts';
import type { ModelStore } from '../registry/store.ts';

interface Tracked {
  ref: ModelRef;
  model: LoadedModel;
}

export class ServingModels {
  /** Alias and bare references in use, with the version currently serving each. */
  private readonly tracked = new Map<string, Tracked>();
  private readonly pending = new Map<string, Promise<LoadedModel>>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private stopped = false;
  private readonly missing = new Set<string>();

  constructor(
    private readonly pool: Pool,
    private readonly store: ModelStore,
    private readonly models: ModelCache,
    private readonly pollMs: number,
    /** References that must be loaded before the service reports ready. */
    private readonly required: readonly string[],
  ) {}

  /** The loaded version serving `ref` (`name`, `name@alias` or `name@3`). Throws ModelNotFoundError or RefError. */
  resolve(reference: string): Promise<LoadedModel> | LoadedModel {
    const current = this.tracked.get(reference);
    if (current) return current.model;
    const ref = parseModelRef(reference);
    if (ref.version !== undefined) return this.models.get({ name: ref.name, version: ref.version });
    let loading = this.pending.get(reference);
    if (!loading) {
      loading = this.track(reference, ref).finally(() => this.pending.delete(reference));
      this.pending.set(reference, loading);
    }
    return loading;
  }

  private async track(reference: string, ref: ModelRef): Promise<LoadedModel> {
    const version = await this.store.resolve(ref);
    const model = await this.models.get(version);
    if (!this.stopped) this.tracked.set(reference, { ref, model });
    return model;
  }

  /** True once every required reference has a loaded version. */
  ready(): boolean {
    return this.required.every((r) => this.tracked.has(r));
  }

  /** What each reference resolves to right now, for /readyz. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.tracked].map(([reference, t]) => [reference, t.model.version]));
  }

  /** Starts polling; resolves after the first pass, so the required models are loaded when they exist. */
  async start(): Promise<void> {
    const loop = async () => {
      this.polling = this.refresh().catch((err) => log.warn({ err: (err as Error).message }, 'model alias refresh failed; serving the versions already loaded'));
      await this.polling;
      if (!this.stopped) this.timer = setTimeout(loop, this.pollMs);
    };
    await loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.polling;
  }

  /** Loads the required references still missing and moves tracked ones to the versions their aliases now name. */
  async refresh(): Promise<void> {
    for (const reference of this.required) {
      if (this.tracked.has(reference)) continue;
      try {
        await this.resolve(reference);
        this.missing.delete(reference);
      } catch (err) {
        // Said once, not on every poll.
        if (!this.missing.has(reference)) log.warn({ model: reference, err: (err as Error).message }, 'model not available yet; retrying');
        this.missing.add(reference);
      }
    }
    const names = [...new Set([...this.tracked.values()].map((t) => t.ref.name))];
    if (names.length === 0) return;
    const { rows } = await this.pool.query(
      `SELECT v.name, max(v.version) AS latest,
              (SELECT jsonb_object_agg(a.alias, a.version) FROM model_aliases a WHERE a.name = v.name) AS aliases
       FROM model_versions v WHERE v.name = ANY($1) GROUP BY v.name`,
      [names],
    );
    const byName = new Map(rows.map((r) => [r.name as string, r as { latest: number; aliases: Record<string, number> | null }]));
    for (const [reference, t] of this.tracked) {
      const row = byName.get(t.ref.name);
      const aliases = row?.aliases ?? {};
      const target = t.ref.alias ? aliases[t.ref.alias] : (aliases[DEFAULT_ALIAS] ?? row?.latest);
      if (target === undefined) {
        // The alias was removed: later requests resolve again (and get a 404).
        this.tracked.delete(reference);
        log.warn({ model: reference }, 'model reference no longer resolves');
        continue;
      }
      if (target === t.model.version) continue;
      let model: LoadedModel;
      try {
        model = await this.models.get({ name: t.ref.name, version: target });
      } catch (err) {
        log.error({ model: reference, version: target, err: (err as Error).message }, 'cannot load the promoted version; still serving the previous one');
        continue;
      }
      if (this.tracked.get(reference) === t) {
        this.tracked.set(reference, { ref: t.ref, model });
        log.info({ model: reference, from: t.model.version, to: target }, 'switched model version');
      }
    }
  }
}
