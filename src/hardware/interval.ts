import { median } from '../util/timing.js';

/**
 * Confidence intervals of speed-ups from paired timings (pure). Each round times every model once, so the
 * machine's drift within a round falls on both; a round's ratio parent / child is one sample of the speed-up.
 * The speed-up is the median of those ratios, with the distribution-free interval of a median: this machine's
 * noise is spikes of a few milliseconds added to a run whatever its length (the 90th percentile of rounds lay
 * 4–9 ms above the median for a 1 ms child and an 18 ms parent alike), and a mean of ratios let them decide a small
 * child's speed-up — ×9.6 by the geometric mean, ×13.4 by the median, from the same 60 rounds (stories260K, batch-8).
 */

/** A speed-up with its interval: `low ≤ estimate ≤ high`, from `rounds` paired samples. */
export interface SpeedupInterval {
  readonly estimate: number;
  readonly low: number;
  readonly high: number;
  readonly rounds: number;
  /** What the interval covers: the confidence asked for, or less where too few rounds were timed to reach it. */
  readonly confidence: number;
}

/** ln Γ(x), x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  const z = x - 1;
  let a = c[0];
  for (let k = 1; k < 9; k++) a += c[k] / (z + k);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/**
 * P(B ≤ k) for B ~ Binomial(n, ½): how often at most k of n rounds fall below the true median ratio (sums of
 * exp(ln C(n, i) − n ln 2), so that n in the thousands neither overflows nor underflows).
 */
export function binomialHalfCdf(k: number, n: number): number {
  let p = 0;
  for (let i = 0; i <= Math.min(k, n); i++) p += Math.exp(logGamma(n + 1) - logGamma(i + 1) - logGamma(n - i + 1) - n * Math.LN2);
  return Math.min(1, p);
}

/**
 * The speed-up of `child` over `parent` (seconds of each round, paired by index) with its interval; at least 2 rounds.
 * The estimate is the median of the rounds' ratios; the interval is the order statistics of the log-ratios around it
 * that cover the median with probability `confidence` whatever their distribution (the sign test's interval: k-th
 * smallest to k-th largest, k the largest with P(B ≤ k − 1) ≤ (1 − confidence) / 2). Fewer than six rounds cannot
 * reach 95%: their interval is the whole range, and `confidence` says what it does reach.
 */
export function speedupInterval(parentSeconds: readonly number[], childSeconds: readonly number[], confidence = 0.95): SpeedupInterval {
  const n = parentSeconds.length;
  if (n !== childSeconds.length || n < 2) throw new RangeError(`paired timings: ${n} parent and ${childSeconds.length} child rounds (at least 2 each, as many)`);
  const logs = parentSeconds.map((p, i) => Math.log(p / childSeconds[i])).sort((a, b) => a - b);
  let k = 1;
  while (k < n / 2 && binomialHalfCdf(k, n) <= (1 - confidence) / 2) k++;
  const reached = 1 - 2 * binomialHalfCdf(k - 1, n);
  return { estimate: Math.exp(median(logs)), low: Math.exp(logs[k - 1]), high: Math.exp(logs[n - k]), rounds: n, confidence: Math.min(confidence, reached) };
}

/** The interval holds 1: the timings cannot tell the child from its parent. */
export const withinNoise = (s: SpeedupInterval): boolean => s.low <= 1 && 1 <= s.high;

/** The interval is at most ±`precision` around its estimate (on the log scale: high / low ≤ ((1 + p) / (1 − p))). */
export const preciseEnough = (s: SpeedupInterval, precision: number): boolean => s.high / s.low <= (1 + precision) / (1 - precision);

/** "×1.52 (95%: 1.45–1.60, 12 rounds)", or "within noise: …" when the interval holds 1 (intervals recorded before `confidence` existed were all 95%). */
export function describeSpeedup(s: SpeedupInterval): string {
  const body = `×${s.estimate.toFixed(2)} (${Math.floor(100 * (s.confidence ?? 0.95) + 1e-9)}%: ${s.low.toFixed(2)}–${s.high.toFixed(2)}, ${s.rounds} rounds)`;
  return withinNoise(s) ? `within noise: ${body}` : body;
}
