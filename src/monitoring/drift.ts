// A run's drift and quality from its merged histograms and the reference profile: per
// feature PSI, a two-sample test and the missing shares, a verdict per feature (PSI at or
// above the threshold) and per run (that share of features or more drifted).
import type { DriftPartial, BinnedPartial } from './histograms.ts';
import { binLabels, type FeatureProfile, type Profile } from './profile.ts';
import { chiSquareTest, ksTest, psi, shares, type TestResult } from './statistics.ts';

export interface DriftThresholds {
  /** A feature drifted when its PSI is at least this (0.1 is a moderate shift, 0.2 a significant one). */
  psi: number;
  /** The run drifted when at least this share of its features drifted (Evidently's data-drift preset: 0.5). */
  share: number;
}

export const DEFAULT_THRESHOLDS: DriftThresholds = { psi: 0.2, share: 0.5 };

export interface DistributionDrift {
  name: string;
  kind: 'numeric' | 'categorical';
  psi: number;
  test: TestResult;
  drifted: boolean;
  missingShare: { reference: number; current: number };
  /** Bin labels and the reference's and current data's shares of each bin (for charts). */
  bins: string[];
  reference: number[];
  current: number[];
  mean: { reference: number; current: number } | null;
}

export interface DriftReport {
  thresholds: DriftThresholds;
  drifted: boolean;
  driftedShare: number;
  rows: number;
  referenceRows: number;
  referenceSource: string;
  /** Sorted by PSI, largest first. */
  features: DistributionDrift[];
  prediction: DistributionDrift;
  actual: DistributionDrift | null;
  quality: { rows: number; rmse: number; mae: number } | null;
  rejected: Array<{ reason: string; rows: number }>;
}

/** What the workflow result and the CLI summary carry: the verdict and feature names, no distributions. */
export interface DriftSummary {
  drifted: boolean;
  driftedShare: number;
  features: string[];
  predictionPsi: number;
}

function distribution(profile: FeatureProfile, current: BinnedPartial, threshold: number): DistributionDrift {
  const present = current.counts.reduce((s, c) => s + c, 0);
  const referencePresent = profile.counts.reduce((s, c) => s + c, 0);
  const value = psi(profile.counts, current.counts);
  return {
    name: profile.name,
    kind: profile.kind,
    psi: value,
    test: profile.kind === 'numeric' ? ksTest(profile.counts, current.counts) : chiSquareTest(profile.counts, current.counts),
    drifted: value >= threshold,
    missingShare: { reference: profile.missing / Math.max(referencePresent + profile.missing, 1), current: current.missing / Math.max(present + current.missing, 1) },
    bins: binLabels(profile),
    reference: shares(profile.counts),
    current: shares(current.counts),
    mean: profile.kind === 'numeric' ? { reference: profile.mean, current: present ? current.sum / present : 0 } : null,
  };
}

export function computeDrift(
  reference: Profile,
  partial: DriftPartial,
  rejected: Array<{ reason: string; rows: number }>,
  thresholds: DriftThresholds = DEFAULT_THRESHOLDS,
): DriftReport {
  const features = reference.features.map((f, i) => distribution(f, partial.features[i], thresholds.psi)).sort((a, b) => b.psi - a.psi);
  const driftedShare = features.length ? features.filter((f) => f.drifted).length / features.length : 0;
  return {
    thresholds,
    drifted: features.length > 0 && driftedShare >= thresholds.share,
    driftedShare,
    rows: partial.rows,
    referenceRows: reference.rows,
    referenceSource: reference.source,
    features,
    prediction: distribution(reference.prediction, partial.prediction, thresholds.psi),
    actual: reference.actual && partial.actual ? distribution(reference.actual, partial.actual, thresholds.psi) : null,
    quality: partial.errorRows ? { rows: partial.errorRows, rmse: Math.sqrt(partial.sqErrorSum / partial.errorRows), mae: partial.absErrorSum / partial.errorRows } : null,
    rejected,
  };
}

export function summarizeDrift(report: DriftReport): DriftSummary {
  return {
    drifted: report.drifted,
    driftedShare: report.driftedShare,
    features: report.features.filter((f) => f.drifted).map((f) => f.name),
    predictionPsi: report.prediction.psi,
  };
}
