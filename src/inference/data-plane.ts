// The one inference path (a data plane, as KServe's DataPlane under its v1/v2 endpoints):
//   resolve → map features → slice → run → post-process → metrics.
// Batch chunks, POST /predict, /v1, v2 infer, streaming consumers and `mldeploy predict` all
// score through a DataPlane; only the lane label of its metrics differs.
//
// onnxruntime-node runs a session synchronously on the event loop, so two things keep
// latency low under load:
// - single requests arriving together are scored in one call (dynamic batching, as Triton
//   does): one call for 32 records costs about as much as one for a single record;
// - a large request is scored in slices, yielding to the event loop between them, so the
//   small requests behind it wait for one slice at most, not the whole request. Raw-tensor
//   slices grow with how cheap the model is (SLICE_BUDGET_MS): a linear model scores 10,000
//   rows in one call instead of 40.
// Records go through the model's feature mapper and post-processing (LoadedModel.predict);
// raw v2 tensors skip both but share the slicing, the dynamic batching and the metrics.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import ort from 'onnxruntime-node';
import type { FeatureRecord, RecordError } from '../registry/features.ts';
import type { ModelResolver } from '../registry/resolver.ts';
import { probabilityMap } from '../registry/classifier.ts';
import type { LoadedModel, PredictResult } from '../registry/runtime.ts';
import type { ClassLabel } from '../registry/spec.ts';
import { observeInference, type Lane } from './metrics.ts';

export type { Lane } from './metrics.ts';

/** Records per onnxruntime call for large requests: a few milliseconds of work each. */
export const SLICE_RECORDS = 256;

/** A raw-tensor slice's target time, from the model's measured cost per row (never fewer rows than SLICE_RECORDS). */
export const SLICE_BUDGET_MS = 1;

export interface DataPlaneOptions {
  /** The metrics label: web, batch, stream or cli. */
  lane: Lane;
  /** Resolves references for model() and predict(). */
  resolver?: ModelResolver;
  /** Most single requests scored in one call; 1 (the default) turns dynamic batching off. */
  maxBatch?: number;
  /** How long the first queued request waits for others; 0 = until the current event-loop turn ends. */
  maxDelayUs?: number;
  /** Rows per onnxruntime call for large requests (default SLICE_RECORDS); raw tensors' smallest slice. */
  sliceRecords?: number;
  /** A raw-tensor slice's target time (default SLICE_BUDGET_MS). */
  sliceBudgetMs?: number;
}

/** One record's answer; a classifier's also carries its label and class probabilities (PredictResult's contract). */
export type RecordOutcome = { prediction: number; error?: undefined; classification?: Classification } | { prediction?: undefined; error: RecordError; classification?: undefined };

export interface Classification {
  label: ClassLabel;
  /** Keyed by class label, in the classes' order. */
  probabilities: Record<string, number>;
}

/** Record i's outcome in a result. */
export function outcomeOf(result: PredictResult, i: number): RecordOutcome | undefined {
  const prediction = result.predictions[i];
  if (prediction === null) return undefined;
  const { classes, labels, probabilities } = result;
  if (!classes || !labels || !probabilities) return { prediction };
  return { prediction, classification: { label: labels[i]!, probabilities: probabilityMap(classes, probabilities, i) } };
}

/** Joins the results of consecutive slices (`size` records each but the last). */
export function joinResults(parts: readonly PredictResult[], size: number): PredictResult {
  if (parts.length === 1) return parts[0];
  const predictions: Array<number | null> = [];
  const errors: RecordError[] = [];
  parts.forEach((part, s) => {
    for (const p of part.predictions) predictions.push(p);
    for (const e of part.errors) errors.push({ ...e, index: e.index + s * size });
  });
  const classes = parts.find((p) => p.classes && p.classes.length > 0)?.classes ?? parts[0].classes;
  if (!classes) return { predictions, errors };
  const width = classes.length;
  const probabilities = new Float32Array(predictions.length * width).fill(NaN);
  const labels: Array<ClassLabel | null> = [];
  let row = 0;
  for (const part of parts) {
    for (const l of part.labels ?? []) labels.push(l);
    if (part.probabilities && part.probabilities.length === part.predictions.length * width) probabilities.set(part.probabilities, row * width);
    row += part.predictions.length;
  }
  return { predictions, errors, classes, labels, probabilities };
}

/** The batching behaviour of a DynamicBatcher. */
export interface BatchingOptions {
  maxBatch: number;
  maxDelayUs: number;
}

interface Waiting<I, O> {
  item: I;
  resolve: (outcome: O) => void;
  reject: (err: unknown) => void;
}

/**
 * Collects requests for one model version and runs them together: flushed when maxBatch
 * rows are queued, or maxDelayUs after the first one (0: when the event-loop turn ends).
 * `run` answers one outcome per item, in order, or throws for the whole batch.
 */
export class DynamicBatcher<I, O> {
  private queue: Array<Waiting<I, O>> = [];
  private rows = 0;
  private timer: NodeJS.Immediate | NodeJS.Timeout | undefined;

  constructor(
    private readonly options: BatchingOptions,
    private readonly run: (items: I[]) => Promise<O[]>,
    private readonly rowsOf: (item: I) => number = () => 1,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      const rows = this.rowsOf(item);
      if (this.queue.length > 0 && this.rows + rows > this.options.maxBatch) this.flush();
      this.queue.push({ item, resolve, reject });
      this.rows += rows;
      if (this.rows >= this.options.maxBatch) this.flush();
      else if (!this.timer) {
        this.timer = this.options.maxDelayUs === 0 ? setImmediate(this.flush) : setTimeout(this.flush, this.options.maxDelayUs / 1000);
      }
    });
  }

  private readonly flush = (): void => {
    if (this.timer) {
      clearImmediate(this.timer as NodeJS.Immediate);
      clearTimeout(this.timer as NodeJS.Timeout);
      this.timer = undefined;
    }
    const batch = this.queue;
    this.queue = [];
    this.rows = 0;
    if (batch.length === 0) return;
    this.run(batch.map((w) => w.item)).then(
      (outcomes) => batch.forEach((w, i) => w.resolve(outcomes[i])),
      (err) => batch.forEach((w) => w.reject(err)),
    );
  };
}

/** True when every input and output has a variable first dimension, so rows can be sliced and joined. */
export function sliceable(model: Pick<LoadedModel, 'metadata'>): boolean {
  const { inputs, outputs } = model.metadata;
  return [...inputs, ...outputs].every((t) => t.shape.length > 0 && typeof t.shape[0] !== 'number');
}

/** Runs `work` on row ranges of at most `size`, yielding to the event loop between them; stops when `signal` aborts. */
export async function inSlices<T>(rows: number, size: number, signal: AbortSignal | undefined, work: (start: number, end: number) => Promise<T>): Promise<T[]> {
  const parts: T[] = [];
  for (let start = 0; start === 0 || start < rows; start += size) {
    if (start > 0) await yieldToEventLoop();
    signal?.throwIfAborted();
    parts.push(await work(start, Math.min(rows, start + size)));
  }
  return parts;
}

/** Rows [start, end) of a tensor whose first dimension is the batch. */
export function sliceRows(tensor: ort.Tensor, start: number, end: number): ort.Tensor {
  const rows = tensor.dims[0];
  const width = rows > 0 ? tensor.size / rows : 0;
  const data = tensor.data as Float32Array | string[];
  const part = Array.isArray(data) ? data.slice(start * width, end * width) : data.subarray(start * width, end * width);
  return new ort.Tensor(tensor.type as 'float32', part as Float32Array, [end - start, ...tensor.dims.slice(1)]);
}

/** Joins tensors of one type and trailing shape along the batch dimension. */
export function joinRows(tensors: ort.Tensor[]): ort.Tensor {
  if (tensors.length === 1) return tensors[0];
  const [first] = tensors;
  const rows = tensors.reduce((n, t) => n + t.dims[0], 0);
  const data = first.data;
  let joined: unknown;
  if (Array.isArray(data)) joined = tensors.flatMap((t) => t.data as string[]);
  else {
    const Ctor = (data as Float32Array).constructor as new (n: number) => Float32Array;
    const out = new Ctor(tensors.reduce((n, t) => n + t.size, 0));
    let at = 0;
    for (const t of tensors) {
      out.set(t.data as Float32Array, at);
      at += t.size;
    }
    joined = out;
  }
  return new ort.Tensor(first.type as 'float32', joined as Float32Array, [rows, ...first.dims.slice(1)]);
}

/** A raw-tensor request (v2): feeds whose first dimension is `rows`, and the outputs wanted. */
export interface TensorRequest {
  feeds: Record<string, ort.Tensor>;
  rows: number;
  outputs: string[];
}

type TensorOutcome = { outputs: Record<string, ort.Tensor>; error?: undefined } | { outputs?: undefined; error: unknown };

export class DataPlane {
  readonly lane: Lane;
  private readonly resolver: ModelResolver | undefined;
  private readonly batching: BatchingOptions;
  private readonly sliceRecords: number;
  private readonly sliceBudgetMs: number;
  private readonly recordBatchers = new WeakMap<LoadedModel, DynamicBatcher<FeatureRecord, RecordOutcome>>();
  private readonly tensorBatchers = new WeakMap<LoadedModel, Map<string, DynamicBatcher<TensorRequest, TensorOutcome>>>();
  /** Milliseconds per row of each model's large raw-tensor calls (a moving average), which sizes its slices. */
  private readonly rowCost = new WeakMap<LoadedModel, number>();

  constructor(options: DataPlaneOptions) {
    this.lane = options.lane;
    this.resolver = options.resolver;
    this.batching = { maxBatch: options.maxBatch ?? 1, maxDelayUs: options.maxDelayUs ?? 0 };
    this.sliceRecords = options.sliceRecords ?? SLICE_RECORDS;
    this.sliceBudgetMs = options.sliceBudgetMs ?? SLICE_BUDGET_MS;
  }

  /** Resolve: the loaded version answering `reference`, synchronous once loaded. */
  model(reference: string): LoadedModel | Promise<LoadedModel> {
    if (!this.resolver) throw new Error(`the ${this.lane} data plane has no resolver`);
    return this.resolver.serve(reference);
  }

  /** Resolve, then score records (see many()). */
  async predict(reference: string, records: readonly FeatureRecord[], signal?: AbortSignal): Promise<{ model: LoadedModel; result: PredictResult }> {
    const model = await this.model(reference);
    return { model, result: await this.many(model, records, signal) };
  }

  /** Map → run → post-process for one slice, timed. */
  private async call(model: LoadedModel, records: readonly FeatureRecord[]): Promise<PredictResult> {
    const started = performance.now();
    const result = await model.predict(records);
    observeInference(this.lane, model, (performance.now() - started) / 1000, records.length);
    return result;
  }

  /** One record: through the dynamic batcher when batching is on. */
  async one(model: LoadedModel, record: FeatureRecord): Promise<RecordOutcome> {
    if (this.batching.maxBatch <= 1) {
      const result = await this.call(model, [record]);
      return result.errors.length ? { error: result.errors[0] } : outcomeOf(result, 0)!;
    }
    let batcher = this.recordBatchers.get(model);
    if (!batcher) {
      batcher = new DynamicBatcher(this.batching, async (records) => {
        const result = await this.call(model, records);
        const outcomes = new Array<RecordOutcome>(records.length);
        for (const e of result.errors) outcomes[e.index] = { error: { ...e, index: 0 } };
        for (let i = 0; i < records.length; i++) outcomes[i] ??= outcomeOf(result, i)!;
        return outcomes;
      });
      this.recordBatchers.set(model, batcher);
    }
    return batcher.submit(record);
  }

  /** Many records, in slices with a yield between them; one entry per record, null where rejected. */
  async many(model: LoadedModel, records: readonly FeatureRecord[], signal?: AbortSignal): Promise<PredictResult> {
    if (records.length <= this.sliceRecords) return this.call(model, records);
    const size = this.sliceRecords;
    const parts = await inSlices(records.length, size, signal, (start, end) => this.call(model, records.slice(start, end)));
    return joinResults(parts, size);
  }

  /**
   * Raw tensors (v2): run the model on feeds already checked against its metadata. Small
   * requests share calls through the dynamic batcher, large ones run in slices, when the
   * model's first dimensions are all variable. Throws what onnxruntime throws.
   */
  async tensors(model: LoadedModel, request: TensorRequest, signal?: AbortSignal): Promise<Record<string, ort.Tensor>> {
    const batchable = sliceable(model);
    if (batchable && this.batching.maxBatch > 1 && request.rows < this.batching.maxBatch) {
      const outcome = await this.tensorBatcher(model, request).submit(request);
      if (outcome.outputs) return outcome.outputs;
      throw outcome.error;
    }
    const size = this.tensorSlice(model);
    if (!batchable || request.rows <= size) return this.runTensors(model, request.feeds, request.rows, request.outputs);
    const parts = await inSlices(request.rows, size, signal, (start, end) =>
      this.runTensors(model, Object.fromEntries(Object.entries(request.feeds).map(([k, t]) => [k, sliceRows(t, start, end)])), end - start, request.outputs),
    );
    return Object.fromEntries(request.outputs.map((n) => [n, joinRows(parts.map((p) => p[n]))]));
  }

  /** Rows per slice of a large raw-tensor request: sliceBudgetMs of the model's measured work, at least sliceRecords. */
  private tensorSlice(model: LoadedModel): number {
    const perRow = this.rowCost.get(model);
    return perRow === undefined ? this.sliceRecords : Math.max(this.sliceRecords, Math.floor(this.sliceBudgetMs / perRow));
  }

  private async runTensors(model: LoadedModel, feeds: Record<string, ort.Tensor>, rows: number, outputs: string[]): Promise<Record<string, ort.Tensor>> {
    const started = performance.now();
    const result = await model.session.run(feeds, outputs);
    const elapsed = performance.now() - started;
    observeInference(this.lane, model, elapsed / 1000, rows);
    // Only large calls measure the cost per row: a small call's is mostly the fixed cost of a call.
    if (rows >= this.sliceRecords) {
      const previous = this.rowCost.get(model);
      this.rowCost.set(model, previous === undefined ? elapsed / rows : 0.8 * previous + (0.2 * elapsed) / rows);
    }
    return result;
  }

  /** Requests join one call only when they want the same outputs and their tensors agree past the first dimension. */
  private tensorBatcher(model: LoadedModel, request: TensorRequest): DynamicBatcher<TensorRequest, TensorOutcome> {
    const key = `${request.outputs.join('\u0000')}|${Object.keys(request.feeds)
      .sort()
      .map((k) => `${k}:${request.feeds[k].dims.slice(1).join('x')}`)
      .join(',')}`;
    let batchers = this.tensorBatchers.get(model);
    if (!batchers) {
      batchers = new Map();
      this.tensorBatchers.set(model, batchers);
    }
    let batcher = batchers.get(key);
    if (!batcher) {
      batcher = new DynamicBatcher<TensorRequest, TensorOutcome>(
        this.batching,
        (requests) => this.runTensorBatch(model, requests),
        (r) => r.rows,
      );
      batchers.set(key, batcher);
    }
    return batcher;
  }

  private async runTensorBatch(model: LoadedModel, requests: TensorRequest[]): Promise<TensorOutcome[]> {
    const alone = (r: TensorRequest): Promise<TensorOutcome> =>
      this.runTensors(model, r.feeds, r.rows, r.outputs).then(
        (outputs) => ({ outputs }),
        (error: unknown) => ({ error }),
      );
    if (requests.length === 1) return [await alone(requests[0])];
    const rows = requests.reduce((n, r) => n + r.rows, 0);
    const names = requests[0].outputs;
    const feeds = Object.fromEntries(Object.keys(requests[0].feeds).map((k) => [k, joinRows(requests.map((r) => r.feeds[k]))]));
    let joined: Record<string, ort.Tensor>;
    try {
      joined = await this.runTensors(model, feeds, rows, names);
    } catch {
      // One request's data fails the shared call: run each alone, so only that one fails.
      return Promise.all(requests.map(alone));
    }
    if (names.some((n) => joined[n].dims[0] !== rows)) return Promise.all(requests.map(alone));
    let start = 0;
    return requests.map((r) => {
      const end = start + r.rows;
      const outputs = Object.fromEntries(names.map((n) => [n, sliceRows(joined[n], start, end)]));
      start = end;
      return { outputs };
    });
  }
}
