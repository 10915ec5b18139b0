// The online prediction log: responses never wait for it. Entries go into a bounded
// in-memory queue that one writer drains into PostgreSQL in batches; when the queue is
// full (the database is slow or down) new entries are dropped and counted. With a sampler
// (MLDEPLOY_PREDICTION_LOG off, monitoring on), only a sample of monitored models' records
// is kept, marked sampled, for their monitors (src/monitoring/sampling.ts).
import type ort from 'onnxruntime-node';
import type { Pool } from '../db/pool.ts';
import { log } from '../log.ts';
import { valuesOf } from '../registry/dtypes.ts';
import type { FeatureRecord } from '../registry/features.ts';
import type { LoadedModel } from '../registry/runtime.ts';
import { jsonbSafe } from '../text.ts';
import type { WebInputSampler } from '../monitoring/sampling.ts';
import { predictionLogDropped, predictionLogWritten } from './metrics.ts';

interface Entry {
  request_id: string;
  record_index: number;
  model_name: string;
  model_version: number;
  features: Record<string, unknown>;
  prediction: number;
  predicted_at: string;
  sampled: boolean;
}

const WRITE_BATCH = 1000;
const FLUSH_EVERY_MS = 200;

const INSERT = `INSERT INTO prediction_log (request_id, record_index, model_name, model_version, features, prediction, predicted_at, sampled)
  SELECT request_id, record_index, model_name, model_version, features, prediction, predicted_at, sampled
  FROM jsonb_to_recordset($1::jsonb) AS r(request_id text, record_index integer, model_name text, model_version integer,
                                          features jsonb, prediction double precision, predicted_at timestamptz, sampled boolean)`;

// jsonbSafe: one string jsonb cannot hold would fail the whole batch insert and drop every entry in it.

export class PredictionLog {
  private queue: Entry[] = [];
  private writing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly fieldsOf = new WeakMap<LoadedModel, string[]>();

  constructor(
    private readonly pool: Pool,
    private readonly maxQueue: number,
    /** Keep only this sampler's records (monitoring without the full log). */
    private readonly sampler?: WebInputSampler,
  ) {}

  /** Before serving: learn which models are monitored. */
  async start(): Promise<void> {
    await this.sampler?.monitored.refresh();
  }

  /** Queues one entry per scored record; only the fields the model reads are kept. */
  add(requestId: string, model: LoadedModel, records: readonly FeatureRecord[], predictions: ReadonlyArray<number | null>): void {
    if (this.sampler && !this.sampler.samples(model.name)) return;
    let fields = this.fieldsOf.get(model);
    if (!fields) {
      fields = model.mapper.requiredFields();
      this.fieldsOf.set(model, fields);
    }
    const at = new Date().toISOString();
    for (let i = 0; i < records.length; i++) {
      const prediction = predictions[i];
      if (prediction === null) continue;
      if (this.sampler && !this.sampler.draw()) continue;
      if (this.queue.length >= this.maxQueue) {
        predictionLogDropped.inc();
        continue;
      }
      const features: Record<string, unknown> = {};
      for (const f of fields) features[f] = records[i][f];
      this.queue.push({
        request_id: requestId,
        record_index: i,
        model_name: model.name,
        model_version: model.version,
        features,
        prediction,
        predicted_at: at,
        sampled: Boolean(this.sampler),
      });
    }
    this.timer ??= setTimeout(this.drain, FLUSH_EVERY_MS);
  }

  /**
   * v2 infer: one entry per row, with the row's values of every input (by input name; a list
   * when a row holds several) and, as the prediction, the row's first element of `output`.
   */
  addTensors(requestId: string, model: LoadedModel, feeds: Record<string, ort.Tensor>, rows: number, output: ort.Tensor): void {
    // Monitors read records by field; tensors are logged only by the full log.
    if (this.sampler) return;
    const plain = (v: unknown) => (typeof v === 'bigint' ? Number(v) : v);
    const perRow = (t: ort.Tensor) => (rows > 0 ? t.size / rows : 0);
    const at = new Date().toISOString();
    // float16 tensors hold their bits: logged as the numbers they stand for.
    const outputValues = valuesOf(output.type, output.data);
    const featureValues = Object.entries(feeds).map(([name, tensor]) => [name, valuesOf(tensor.type, tensor.data), perRow(tensor)] as const);
    for (let i = 0; i < rows; i++) {
      const prediction = Number(plain(outputValues[i * perRow(output)]));
      if (!Number.isFinite(prediction)) continue;
      if (this.queue.length >= this.maxQueue) {
        predictionLogDropped.inc();
        continue;
      }
      const features: Record<string, unknown> = {};
      for (const [name, data, n] of featureValues) {
        const values = Array.from((data as unknown as { slice(a: number, b: number): ArrayLike<unknown> }).slice(i * n, (i + 1) * n), plain);
        features[name] = n === 1 ? values[0] : values;
      }
      this.queue.push({ request_id: requestId, record_index: i, model_name: model.name, model_version: model.version, features, prediction, predicted_at: at, sampled: false });
    }
    this.timer ??= setTimeout(this.drain, FLUSH_EVERY_MS);
  }

  private readonly drain = (): void => {
    this.timer = undefined;
    if (this.writing || this.queue.length === 0) return;
    this.writing = this.writeAll().finally(() => {
      this.writing = undefined;
      if (this.queue.length > 0) this.timer ??= setTimeout(this.drain, FLUSH_EVERY_MS);
    });
  };

  private async writeAll(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, WRITE_BATCH);
      try {
        await this.pool.query(INSERT, [JSON.stringify(batch, jsonbSafe)]);
        predictionLogWritten.inc(batch.length);
      } catch (err) {
        predictionLogDropped.inc(batch.length);
        log.warn({ err: (err as Error).message, entries: batch.length }, 'prediction log write failed; entries dropped');
        return;
      }
    }
  }

  /** Writes what is queued; called on shutdown. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.writing;
    await this.writeAll();
  }
}
