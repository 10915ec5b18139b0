// Prediction statistics of a run, merged from per-chunk partials: exact count, mean, std and
// RMSE; quantiles approximated from each chunk's 101 percentile points (within about one
// percentile of the chunk).

export interface ChunkStats {
  count: number;
  sum: number;
  sumsq: number;
  actualRows: number;
  sqErrorSum: number;
  /** The chunk's 0th..100th percentiles. */
  percentiles: number[];
}

export interface RunStats {
  mean: number;
  std: number;
  rmse: number | null;
  quantiles: Record<'p05' | 'p25' | 'p50' | 'p75' | 'p95', number>;
}

/** Collects one chunk's statistics as its predictions stream past. */
export class StatsAccumulator {
  private readonly values: number[] = [];
  private sum = 0;
  private sumsq = 0;
  private actualRows = 0;
  private sqErrorSum = 0;

  add(prediction: number, actual: number | null): void {
    this.values.push(prediction);
    this.sum += prediction;
    this.sumsq += prediction * prediction;
    if (actual !== null && Number.isFinite(actual)) {
      this.actualRows++;
      this.sqErrorSum += (prediction - actual) ** 2;
    }
  }

  finish(): ChunkStats {
    const sorted = Float64Array.from(this.values).sort();
    const percentiles = sorted.length ? Array.from({ length: 101 }, (_, k) => sorted[Math.round((k / 100) * (sorted.length - 1))]) : [];
    return { count: sorted.length, sum: this.sum, sumsq: this.sumsq, actualRows: this.actualRows, sqErrorSum: this.sqErrorSum, percentiles };
  }
}

export function chunkStats(predictions: ArrayLike<number>, actuals: Array<number | null>): ChunkStats {
  const acc = new StatsAccumulator();
  for (let i = 0; i < predictions.length; i++) acc.add(predictions[i], actuals[i]);
  return acc.finish();
}

export function mergeStats(chunks: ChunkStats[]): RunStats | null {
  const count = chunks.reduce((n, c) => n + c.count, 0);
  if (count === 0) return null;
  const sum = chunks.reduce((s, c) => s + c.sum, 0);
  const sumsq = chunks.reduce((s, c) => s + c.sumsq, 0);
  const actualRows = chunks.reduce((n, c) => n + c.actualRows, 0);
  const sqErrorSum = chunks.reduce((s, c) => s + c.sqErrorSum, 0);
  const mean = sum / count;
  const points = chunks
    .filter((c) => c.count > 0)
    .flatMap((c) => c.percentiles.map((value) => ({ value, weight: c.count / c.percentiles.length })))
    .sort((a, b) => a.value - b.value);
  const quantile = (q: number) => {
    let seen = 0;
    for (const p of points) {
      seen += p.weight;
      if (seen >= q * count) return p.value;
    }
    return points[points.length - 1].value;
  };
  return {
    mean,
    std: Math.sqrt(Math.max(sumsq / count - mean * mean, 0)),
    rmse: actualRows > 0 ? Math.sqrt(sqErrorSum / actualRows) : null,
    quantiles: { p05: quantile(0.05), p25: quantile(0.25), p50: quantile(0.5), p75: quantile(0.75), p95: quantile(0.95) },
  };
}
