// Scoring for the web service. onnxruntime-node runs a session synchronously on the event
// loop, so two things keep latency low under load:
// - single records arriving together are scored in one call (dynamic batching, as
//   Triton does): one call for 32 records costs about as much as one for a single record;
// - a large request is scored in slices, yielding to the event loop between them, so the
//   small requests behind it wait for one slice at most, not the whole request.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { FeatureRecord, RecordError } from '../registry/features.ts';
import type { LoadedModel, PredictResult } from '../registry/runtime.ts';
import { inferenceBatchSize, inferenceTime } from './metrics.ts';

/** Records per onnxruntime call for large requests: a few milliseconds of work each. */
export const SLICE_RECORDS = 256;

export interface BatchingOptions {
  /** Most single records scored in one call; 1 turns dynamic batching off. */
  maxBatch: number;
  /** How long the first queued record waits for others; 0 = until the current event-loop turn ends. */
  maxDelayUs: number;
}

export type RecordOutcome = { prediction: number; error?: undefined } | { prediction?: undefined; error: RecordError };

interface Waiting {
  record: FeatureRecord;
  resolve: (outcome: RecordOutcome) => void;
  reject: (err: unknown) => void;
}

/** Scores one batch in one onnxruntime call and records how long it took. */
async function timedPredict(model: LoadedModel, records: readonly FeatureRecord[]): Promise<PredictResult> {
  const started = performance.now();
  const result = await model.predict(records);
  const labels = { model: model.name, version: String(model.version) };
  inferenceTime.observe(labels, (performance.now() - started) / 1000);
  inferenceBatchSize.observe({ model: model.name }, records.length);
  return result;
}

/** Collects single records for one model version and scores them together. */
class DynamicBatcher {
  private queue: Waiting[] = [];
  private timer: NodeJS.Immediate | NodeJS.Timeout | undefined;

  constructor(
    private readonly model: LoadedModel,
    private readonly options: BatchingOptions,
  ) {}

  submit(record: FeatureRecord): Promise<RecordOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ record, resolve, reject });
      if (this.queue.length >= this.options.maxBatch) this.flush();
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
    timedPredict(
      this.model,
      batch.map((w) => w.record),
    ).then(
      (result) => settle(batch, result),
      (err) => batch.forEach((w) => w.reject(err)),
    );
  };
}

function settle(batch: Waiting[], { predictions, errors }: PredictResult): void {
  for (const e of errors) batch[e.index].resolve({ error: { ...e, index: 0 } });
  for (let i = 0; i < batch.length; i++) {
    const p = predictions[i];
    if (p !== null) batch[i].resolve({ prediction: p });
  }
}

export class Scorer {
  private readonly batchers = new WeakMap<LoadedModel, DynamicBatcher>();

  constructor(private readonly batching: BatchingOptions) {}

  /** One record: through the dynamic batcher when batching is on. */
  async one(model: LoadedModel, record: FeatureRecord): Promise<RecordOutcome> {
    if (this.batching.maxBatch <= 1) {
      const { predictions, errors } = await timedPredict(model, [record]);
      return errors.length ? { error: errors[0] } : { prediction: predictions[0]! };
    }
    let batcher = this.batchers.get(model);
    if (!batcher) {
      batcher = new DynamicBatcher(model, this.batching);
      this.batchers.set(model, batcher);
    }
    return batcher.submit(record);
  }

  /** Many records, in slices of SLICE_RECORDS with a yield between them; stops when `signal` aborts. */
  async many(model: LoadedModel, records: readonly FeatureRecord[], signal?: AbortSignal): Promise<PredictResult> {
    if (records.length <= SLICE_RECORDS) return timedPredict(model, records);
    const predictions: Array<number | null> = [];
    const errors: RecordError[] = [];
    for (let start = 0; start < records.length; start += SLICE_RECORDS) {
      if (start > 0) await yieldToEventLoop();
      signal?.throwIfAborted();
      const slice = await timedPredict(model, records.slice(start, start + SLICE_RECORDS));
      predictions.push(...slice.predictions);
      for (const e of slice.errors) errors.push({ ...e, index: e.index + start });
    }
    return { predictions, errors };
  }
}
