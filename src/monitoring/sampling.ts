// Inputs kept for monitors (docs/monitoring.md). A monitor profiles the inputs and
// predictions of the last period; the prediction log has them when it is on. Otherwise the
// web service keeps a sample of a monitored model's records, and stream consumers a sample of
// their events' features, in prediction_log (sampled = true). Only models with a monitor on
// that source are sampled, at MLDEPLOY_MONITOR_SAMPLE_RATE, through the prediction log's
// bounded queue (web) or one insert per consumer batch (streams); monitor runs delete samples
// older than 24 of their periods.
import type { Pool } from '../db/pool.ts';
import { log } from '../log.ts';
import type { FeatureRecord } from '../registry/features.ts';
import type { LoadedModel } from '../registry/runtime.ts';
import { jsonbSafe } from '../text.ts';

export const MONITOR_SOURCES = ['prediction-log', 'prediction-stream'] as const;
export type MonitorSource = (typeof MONITOR_SOURCES)[number];

/** prediction_log.source of each monitor source's rows. */
export const LOG_SOURCE: Record<MonitorSource, 'web' | 'stream'> = { 'prediction-log': 'web', 'prediction-stream': 'stream' };

/** How often a process re-reads which models are monitored. */
export const MONITORED_REFRESH_MS = 5_000;

/** The names of the models that have a monitor on one source, re-read at most every refreshMs (in the background). */
export class MonitoredModels {
  private names = new Set<string>();
  private loadedAt = 0;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly source: MonitorSource,
    private readonly refreshMs = MONITORED_REFRESH_MS,
  ) {}

  /** Whether the model is monitored, as last read; starts a re-read when that is older than refreshMs. */
  has(name: string): boolean {
    if (Date.now() - this.loadedAt > this.refreshMs) void this.refresh();
    return this.names.has(name);
  }

  /** As has(), but waits for the first read. */
  async includes(name: string): Promise<boolean> {
    if (this.loadedAt === 0) await this.refresh();
    return this.has(name);
  }

  /** Re-reads the monitors (one read at a time); a failed read keeps the last answer. */
  refresh(): Promise<void> {
    this.loading ??= this.pool
      .query('SELECT model_name FROM monitors WHERE source = $1', [this.source])
      .then(({ rows }) => {
        this.names = new Set(rows.map((r) => r.model_name as string));
        this.loadedAt = Date.now();
      })
      .catch((err: Error) => {
        this.loadedAt = Date.now();
        log.warn({ err: err.message }, 'could not read which models are monitored; keeping the last answer');
      })
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }
}

/** The web service's sampler: keeps a monitored model's record with probability `rate`. */
export class WebInputSampler {
  readonly monitored: MonitoredModels;

  constructor(
    pool: Pool,
    private readonly rate: number,
    private readonly random: () => number = Math.random,
  ) {
    this.monitored = new MonitoredModels(pool, 'prediction-log');
  }

  /** Whether any of the model's records can be kept: once per request. */
  samples(modelName: string): boolean {
    return this.rate > 0 && this.monitored.has(modelName);
  }

  /** Whether to keep one record of a sampled model. */
  draw(): boolean {
    return this.random() < this.rate;
  }
}

/** A share in [0, 1) from an id (FNV-1a): the same id is kept or left out on every retry. */
export function idShare(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 2 ** 32;
}

export interface ScoredEvent {
  eventId: string;
  /** The features the consumer's model scored (the event payload's consumer part). */
  features: FeatureRecord;
  prediction: number;
}

const INSERT_STREAM = `INSERT INTO prediction_log (request_id, record_index, model_name, model_version, features, prediction, predicted_at, source, sampled)
  SELECT request_id, 0, model_name, model_version, features, prediction, now(), 'stream', true
  FROM jsonb_to_recordset($1::jsonb) AS r(request_id text, model_name text, model_version integer, features jsonb, prediction double precision)
  ON CONFLICT (model_name, request_id) WHERE source = 'stream' DO NOTHING`;

/**
 * The stream consumers' sampler: what a consumer calls with its model and the events it
 * scored (after appending their predictions). Keeps the features of a sample of the events
 * when the model has a prediction-stream monitor; the sample is decided by the event id, and
 * a retried batch stores nothing twice. Returns how many events were kept (0 when the write
 * failed: that is logged, never thrown).
 */
export class StreamInputSampler {
  readonly monitored: MonitoredModels;
  private readonly fieldsOf = new WeakMap<LoadedModel, string[]>();

  constructor(
    private readonly pool: Pool,
    private readonly rate: number,
  ) {
    this.monitored = new MonitoredModels(pool, 'prediction-stream');
  }

  async record(model: LoadedModel, consumer: string, eventType: string, events: readonly ScoredEvent[]): Promise<number> {
    if (this.rate <= 0 || events.length === 0 || !(await this.monitored.includes(model.name))) return 0;
    let fields = this.fieldsOf.get(model);
    if (!fields) {
      fields = model.mapper.requiredFields();
      this.fieldsOf.set(model, fields);
    }
    const rows = [];
    for (const e of events) {
      const requestId = `${eventType}:${e.eventId}:${consumer}`;
      if (!Number.isFinite(e.prediction) || idShare(requestId) >= this.rate) continue;
      const features: Record<string, unknown> = {};
      for (const f of fields) features[f] = e.features[f];
      rows.push({ request_id: requestId, model_name: model.name, model_version: model.version, features, prediction: e.prediction });
    }
    if (rows.length === 0) return 0;
    try {
      await this.pool.query(INSERT_STREAM, [JSON.stringify(rows, jsonbSafe)]);
    } catch (err) {
      // Monitoring never fails a consumer: the monitor reads fewer samples.
      log.warn({ err: (err as Error).message, model: model.name, consumer, events: rows.length }, 'stream input samples not stored');
      return 0;
    }
    return rows.length;
  }
}
