// Loaded models: an onnxruntime session plus the feature mapper of one registered version.
// Sessions are cached per process and version, and the bytes are checked against the
// recorded sha256 every time a version is loaded.
import { createHash } from 'node:crypto';
import ort from 'onnxruntime-node';
import { classLabelsOf, labelNumber, readClassifier, type ClassifierOutputs } from './classifier.ts';
import { FeatureMapper, readPredictions, type FeatureRecord, type RecordError } from './features.ts';
import { readMetadata, resolveSpec, type ModelMetadata } from './metadata.ts';
import type { ClassLabel, FeatureSpec, ResolvedSpec } from './spec.ts';
import type { ModelStore, ModelVersion } from './store.ts';
import { ModelResolver } from './resolver.ts';

/**
 * What scoring a batch of records answers. Every lane reads it (web service, CLI, batch runs,
 * stream consumers).
 *
 * - Regression models (and any spec naming one `output`): `predictions` only, exactly as before;
 *   the classifier fields are absent.
 * - Classifiers (a label tensor and a probabilities tensor, e.g. skl2onnx with zipmap=False):
 *   `classes`, `labels` and `probabilities` are set too, and `predictions` still holds one
 *   number per accepted record: the predicted label itself when the class labels are numbers,
 *   otherwise the label's position in `classes`. So code that only knows `predictions` (drift
 *   profiles, a policy threshold, a batch `prediction` column) keeps working on classifiers.
 *
 * Rejected records are null in `predictions` and `labels`, and NaN across their row of
 * `probabilities`.
 */
export interface PredictResult {
  /** One entry per input record, in order; null where the record was rejected. */
  predictions: Array<number | null>;
  errors: RecordError[];
  /** Classifiers: the class labels stored with the version, in the column order of `probabilities`. */
  classes?: Array<string | number>;
  /** Classifiers: the predicted label of each record, in order; null where the record was rejected. */
  labels?: Array<string | number | null>;
  /** Classifiers: records × classes.length probabilities, row-major (record i, class c at i * classes.length + c). */
  probabilities?: Float32Array;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function createSession(bytes: Uint8Array, threads: number): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

export class LoadedModel {
  readonly mapper: FeatureMapper;
  /** When this version last scored (or was handed out by a ModelCache): idle versions leave the cache. */
  lastUsedAt = Date.now();

  constructor(
    readonly name: string,
    readonly version: number,
    readonly session: ort.InferenceSession,
    readonly spec: ResolvedSpec,
    readonly metadata: ModelMetadata,
  ) {
    this.mapper = new FeatureMapper(spec, metadata);
  }

  static async fromBytes(name: string, version: number, bytes: Uint8Array, spec: FeatureSpec, threads: number): Promise<LoadedModel> {
    const session = await createSession(bytes, threads);
    const metadata = readMetadata(session);
    return new LoadedModel(name, version, session, resolveSpec(spec, metadata, classLabelsOf(bytes)), metadata);
  }

  /** Maps and scores one batch in a single onnxruntime call. */
  async predict(records: readonly FeatureRecord[]): Promise<PredictResult> {
    this.lastUsedAt = Date.now();
    const { feeds, accepted, errors } = this.mapper.map(records);
    if (this.spec.classifier) return this.classify(records.length, feeds, accepted, errors, this.spec.classifier);
    const predictions = new Array<number | null>(records.length).fill(null);
    if (accepted.length > 0) {
      const outputs = await this.session.run(feeds, [this.spec.output.name]);
      const values = readPredictions(this.spec, outputs);
      for (let j = 0; j < accepted.length; j++) {
        // A model can emit NaN or ±Infinity for odd inputs; that record gets an error, never a bogus number.
        if (Number.isFinite(values[j])) predictions[accepted[j]] = values[j];
        else errors.push({ index: accepted[j], field: this.spec.output.name, reason: `the model's output ${this.spec.output.name} is ${values[j]} for this record` });
      }
      errors.sort((a, b) => a.index - b.index);
    }
    return { predictions, errors };
  }

  /** A classifier's batch: label and probabilities per accepted record (PredictResult's contract). */
  private async classify(n: number, feeds: Record<string, ort.Tensor>, accepted: number[], errors: RecordError[], spec: ClassifierOutputs): Promise<PredictResult> {
    const predictions = new Array<number | null>(n).fill(null);
    const labels = new Array<ClassLabel | null>(n).fill(null);
    if (accepted.length === 0) {
      const classes = spec.classes ?? [];
      return { predictions, errors, classes, labels, probabilities: new Float32Array(0) };
    }
    const outputs = await this.session.run(feeds, [spec.label, spec.probabilities]);
    const rows = readClassifier(outputs, spec, accepted.length);
    const width = rows.classes.length;
    const probabilities = new Float32Array(n * width).fill(NaN);
    for (let j = 0; j < accepted.length; j++) {
      const i = accepted[j];
      const problem = rows.problems[j];
      if (problem !== undefined) {
        errors.push({ index: i, field: spec.label, reason: problem });
        continue;
      }
      labels[i] = rows.labels[j];
      predictions[i] = labelNumber(rows.labels[j], rows.classes);
      probabilities.set(rows.probabilities.subarray(j * width, (j + 1) * width), i * width);
    }
    errors.sort((a, b) => a.index - b.index);
    return { predictions, errors, classes: rows.classes, labels, probabilities };
  }
}

export class ModelIntegrityError extends Error {
  override name = 'ModelIntegrityError';
}

/** A version neither handed out nor scoring for this long leaves the cache (a promotion leaves the old one idle). */
const IDLE_MS = 10 * 60_000;

/**
 * Per-process cache of loaded versions; concurrent loads of one version share the work.
 * Versions idle for idleMs are dropped from the cache, not released: whoever still holds one
 * can go on scoring with it, and its session is freed with the object once nobody does.
 */
/** `model` while loading; `ready` too once it has loaded (the idle sweep looks at that). */
interface CacheEntry {
  model: Promise<LoadedModel>;
  ready?: LoadedModel;
  /** Loaded on request (the v2 repository extension's load): kept until unloaded, never dropped idle. */
  pinned?: boolean;
}

/** A version's state in one process's cache. */
export type CacheState = 'LOADING' | 'READY';

export class ModelCache {
  private readonly entries = new Map<string, CacheEntry>();
  private readonly sweeper: NodeJS.Timeout;
  /** The process's model resolver (src/registry/resolver.ts): one per cache, so one per process. */
  readonly resolver: ModelResolver;

  constructor(
    private readonly store: ModelStore,
    private readonly threads: number,
    private readonly idleMs = IDLE_MS,
  ) {
    this.sweeper = setInterval(() => this.dropIdle(Date.now()), Math.min(idleMs, 60_000)).unref();
    this.resolver = new ModelResolver(store, this);
  }

  get(version: Pick<ModelVersion, 'name' | 'version'>): Promise<LoadedModel> {
    const key = `${version.name}@${version.version}`;
    let entry = this.entries.get(key);
    if (!entry) {
      const loading: CacheEntry = { model: this.load(version.name, version.version) };
      loading.model.then(
        (m) => (loading.ready = m),
        () => this.entries.get(key) === loading && this.entries.delete(key),
      );
      this.entries.set(key, loading);
      entry = loading;
    }
    if (entry.ready) entry.ready.lastUsedAt = Date.now();
    return entry.model;
  }

  /** Whether a version is loaded in this process (never loads it). */
  isLoaded(version: Pick<ModelVersion, 'name' | 'version'>): boolean {
    return this.entries.get(`${version.name}@${version.version}`)?.ready !== undefined;
  }

  /** The versions loading or loaded in this process, by `name@version`. */
  states(): Map<string, CacheState> {
    return new Map([...this.entries].map(([key, entry]) => [key, entry.ready ? 'READY' : 'LOADING']));
  }

  /** Loads a version and keeps it until unload(), whatever the idle sweep says. */
  async pin(version: Pick<ModelVersion, 'name' | 'version'>): Promise<LoadedModel> {
    const model = await this.get(version);
    const entry = this.entries.get(`${version.name}@${version.version}`);
    if (entry) entry.pinned = true;
    return model;
  }

  /** Drops a version from this process (those holding it finish with it; its session is freed with the object). Returns whether it was there. */
  unload(version: Pick<ModelVersion, 'name' | 'version'>): boolean {
    return this.entries.delete(`${version.name}@${version.version}`);
  }

  /** Drops the versions unused since now - idleMs; returns their keys. */
  dropIdle(now: number): string[] {
    const dropped: string[] = [];
    for (const [key, { ready, pinned }] of this.entries) {
      if (!ready || pinned || now - ready.lastUsedAt < this.idleMs) continue;
      this.entries.delete(key);
      dropped.push(key);
    }
    return dropped;
  }

  /** The loaded version a reference names, through the resolver (resolver.load). */
  resolve(ref: string): Promise<LoadedModel> {
    return this.resolver.load(ref);
  }

  private async load(name: string, versionNumber: number): Promise<LoadedModel> {
    const version = await this.store.get(name, versionNumber);
    const bytes = await this.store.bytes(name, versionNumber);
    const digest = sha256(bytes);
    if (digest !== version.sha256) {
      throw new ModelIntegrityError(`model ${name}@${versionNumber} is corrupt: sha256 ${digest} does not match the registered ${version.sha256}`);
    }
    return LoadedModel.fromBytes(name, versionNumber, bytes, version.spec, this.threads);
  }

  async release(): Promise<void> {
    clearInterval(this.sweeper);
    await this.resolver.stop();
    const models = await Promise.allSettled([...this.entries.values()].map((e) => e.model));
    this.entries.clear();
    for (const m of models) if (m.status === 'fulfilled') await m.value.session.release();
  }
}
