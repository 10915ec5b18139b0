// The drift statistics, on binned distributions: PSI, the two-sample Kolmogorov-Smirnov test
// (evaluated at the reference's bin edges: the data is seen once, as histograms) and
// Pearson's chi-square test against the reference's category shares.

/** A share of 0 would make PSI infinite: empty bins count as this share (as Evidently does). */
export const EMPTY_BIN_SHARE = 1e-4;

export function shares(counts: readonly number[]): number[] {
  const total = counts.reduce((s, c) => s + c, 0);
  return counts.map((c) => (total > 0 ? c / total : 0));
}

/** Population stability index of current against reference, over the same bins. */
export function psi(reference: readonly number[], current: readonly number[]): number {
  const r = shares(reference);
  const c = shares(current);
  let sum = 0;
  for (let i = 0; i < r.length; i++) {
    const ri = Math.max(r[i], EMPTY_BIN_SHARE);
    const ci = Math.max(c[i], EMPTY_BIN_SHARE);
    sum += (ci - ri) * Math.log(ci / ri);
  }
  return sum;
}

export interface TestResult {
  test: 'ks' | 'chi-square';
  statistic: number;
  pValue: number;
}

/** Kolmogorov's limiting distribution: P(D > d) for effective sample size n (Stephens' correction). */
function kolmogorovQ(d: number, n: number): number {
  const sqrtN = Math.sqrt(n);
  const lambda = (sqrtN + 0.12 + 0.11 / sqrtN) * d;
  if (lambda < 1e-3) return 1;
  let sum = 0;
  for (let k = 1; k <= 100; k++) {
    const term = 2 * (k % 2 === 1 ? 1 : -1) * Math.exp(-2 * k * k * lambda * lambda);
    sum += term;
    if (Math.abs(term) < 1e-12) break;
  }
  return Math.min(1, Math.max(0, sum));
}

export function ksTest(reference: readonly number[], current: readonly number[]): TestResult {
  const n = reference.reduce((s, c) => s + c, 0);
  const m = current.reduce((s, c) => s + c, 0);
  if (n === 0 || m === 0) return { test: 'ks', statistic: 0, pValue: 1 };
  let fr = 0;
  let fc = 0;
  let d = 0;
  for (let i = 0; i < reference.length; i++) {
    fr += reference[i] / n;
    fc += current[i] / m;
    d = Math.max(d, Math.abs(fr - fc));
  }
  return { test: 'ks', statistic: d, pValue: kolmogorovQ(d, (n * m) / (n + m)) };
}

/** ln Γ(x), Lanczos' approximation (x > 0). */
function logGamma(x: number): number {
  const g = [76.18009172947146, -86.50532032941678, 24.01409824083091, -1.231739572450155, 0.001208650973866179, -0.5395239384953e-5];
  let y = x;
  const tmp = x + 5.5 - (x + 0.5) * Math.log(x + 5.5);
  let ser = 1.000000000190015;
  for (const c of g) ser += c / ++y;
  return -tmp + Math.log((2.506628274631 * ser) / x);
}

/** The regularized upper incomplete gamma function Q(a, x): series below a + 1, continued fraction above. */
export function upperGamma(a: number, x: number): number {
  if (x <= 0) return 1;
  const lnFront = -x + a * Math.log(x) - logGamma(a);
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 1000 && Math.abs(term) > Math.abs(sum) * 1e-15; n++) {
      term *= x / (a + n);
      sum += term;
    }
    return Math.max(0, 1 - sum * Math.exp(lnFront));
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return Math.min(1, Math.exp(lnFront) * h);
}

/** Goodness of fit of the current counts to the reference's shares (empty reference bins as EMPTY_BIN_SHARE). */
export function chiSquareTest(reference: readonly number[], current: readonly number[]): TestResult {
  const m = current.reduce((s, c) => s + c, 0);
  if (m === 0 || reference.length < 2) return { test: 'chi-square', statistic: 0, pValue: 1 };
  const r = shares(reference).map((s) => Math.max(s, EMPTY_BIN_SHARE));
  const norm = r.reduce((s, x) => s + x, 0);
  let statistic = 0;
  for (let i = 0; i < r.length; i++) {
    const expected = (r[i] / norm) * m;
    statistic += (current[i] - expected) ** 2 / expected;
  }
  return { test: 'chi-square', statistic, pValue: upperGamma((r.length - 1) / 2, statistic / 2) };
}
