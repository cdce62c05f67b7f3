import { median } from '../util/timing.js';

/**
 * Confidence intervals of speed-ups from paired timings (pure). Each round times every model once, so the
 * machine's drift within a round falls on both; a round's ratio parent / child is one sample of the speed-up.
 * The speed-up is the median of those ratios, with the distribution-free interval of a median: this machine's
 * noise is spikes of a few milliseconds added to a run whatever its length (the 90th percentile of rounds lay
 * 4–9 ms above the median for a 1 ms child and an 18 ms parent alike), and a mean of ratios let them decide a small
 * child's speed-up — ×9.6 by the geometric mean, ×13.4 by the median, from the same 60 rounds (stories260K, batch-8).
 *
 * That interval takes rounds for independent samples, and they are not: the machine's state drifts over seconds to
 * minutes, and a small child's speed-up with it (stories260K's ×1.5 child, one process timing it for 157 s: medians
 * of 10-second windows from ×1.66 to ×1.84; ten fresh evaluations of 60 rounds each, ×1.58 to ×1.77, their
 * intervals overlapping in 29 of 45 pairs). So the interval is widened to the batch means' where they say more:
 * the rounds cut into consecutive batches, the median of each, and the t-interval of those medians' mean — batches
 * that sat in different states disagree, and the interval then covers more of what a run at another time measures.
 * Runs cut from five timings of that child (52–157 s each, five processes): of 60 rounds, intervals overlapping in
 * 93% of pairs, widened 96%; of 500 rounds, 57%, widened 90%. Drift slower than a run stays unseen.
 *
 * Nor do longer runs see it (`npm run bench:speed -- --parts states`: that child timed twenty times in a row in one
 * process, then once in each of twenty fresh processes, per scenario; two runs of it). Where the parent ran as
 * profiled, 96–98% of pairs of intervals overlapped; with slow spells among the runs, as few as 71% (single-prompt,
 * 15 of 40 runs with the parent ×1.53–×1.75 slow). The same rounds cut into runs of 10 s timed or more overlapped
 * less, not more (single-prompt 69% and 55%, batch-8 92% and 93%): intervals narrow faster than a run reaches the
 * machine's other states. So an interval says what its run measured, and `parentDrift` says when the machine was
 * not as profiled.
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
 * I_x(a, b), the regularized incomplete beta function (its continued fraction by the modified Lentz method, on the
 * side of x where it converges fast).
 */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x)) / a;
  const tiny = 1e-300;
  let f = 1;
  let c = 1;
  let d = 0;
  for (let i = 0; i <= 400; i++) {
    const m = Math.floor(i / 2);
    const numerator = i === 0 ? 1 : i % 2 === 0 ? (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m)) : -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + numerator * d;
    d = 1 / (Math.abs(d) < tiny ? tiny : d);
    c = 1 + numerator / c;
    if (Math.abs(c) < tiny) c = tiny;
    f *= c * d;
    if (Math.abs(1 - c * d) < 1e-15) break;
  }
  return front * (f - 1);
}

/** P(T ≤ t) for Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The t with P(T ≤ t) = p, p in (0, 1) (bisection on the distribution function). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`a t quantile at ${p}: expected 0 < p < 1`);
  let low = -1;
  let high = 1;
  while (studentTCdf(low, df) > p) low *= 2;
  while (studentTCdf(high, df) < p) high *= 2;
  for (let i = 0; i < 200 && high - low > 1e-12 * Math.max(1, Math.abs(high)); i++) {
    const mid = (low + high) / 2;
    if (studentTCdf(mid, df) < p) low = mid;
    else high = mid;
  }
  return (low + high) / 2;
}

/** Rounds are cut into at most this many consecutive batches for the batch means, each of two rounds at least; three batches at least. */
export const BATCHES = 10;

/**
 * The batch means' interval of the log speed-up (pure): `logs` in the order they were timed, cut into `batches`
 * consecutive batches (as equal as may be), the median of each, and the t-interval of those medians' mean.
 */
export function batchMeansInterval(logs: readonly number[], batches: number, confidence: number): { low: number; high: number } {
  const n = logs.length;
  if (!(batches >= 2 && batches <= n)) throw new RangeError(`${batches} batches of ${n} rounds`);
  const medians = Array.from({ length: batches }, (_, b) => median(logs.slice(Math.floor((b * n) / batches), Math.floor(((b + 1) * n) / batches))));
  const mean = medians.reduce((a, m) => a + m, 0) / batches;
  const sd = Math.sqrt(medians.reduce((a, m) => a + (m - mean) ** 2, 0) / (batches - 1));
  const half = (studentTQuantile((1 + confidence) / 2, batches - 1) * sd) / Math.sqrt(batches);
  return { low: mean - half, high: mean + half };
}

/**
 * The sign test's interval of the median of `logs` (pure): the order statistics around it that cover the median with
 * probability `confidence` whatever the distribution of independent samples — k-th smallest to k-th largest, k the
 * largest with P(B ≤ k − 1) ≤ (1 − confidence) / 2. Fewer than six samples cannot reach 95%: their interval is the
 * whole range, and `confidence` says what it does reach.
 */
export function signTestInterval(logs: readonly number[], confidence: number): { low: number; high: number; confidence: number } {
  const n = logs.length;
  const sorted = [...logs].sort((a, b) => a - b);
  let k = 1;
  while (k < n / 2 && binomialHalfCdf(k, n) <= (1 - confidence) / 2) k++;
  return { low: sorted[k - 1], high: sorted[n - k], confidence: Math.min(confidence, 1 - 2 * binomialHalfCdf(k - 1, n)) };
}

/**
 * The speed-up of `child` over `parent` (seconds of each round, paired by index, in the order timed) with its
 * interval; at least 2 rounds. The estimate is the median of the rounds' ratios; the interval is the sign test's
 * (`signTestInterval`, for independent rounds), widened to the batch means' (`batchMeansInterval`, BATCHES batches,
 * for rounds whose machine drifted) where that reaches further.
 */
export function speedupInterval(parentSeconds: readonly number[], childSeconds: readonly number[], confidence = 0.95): SpeedupInterval {
  const n = parentSeconds.length;
  if (n !== childSeconds.length || n < 2) throw new RangeError(`paired timings: ${n} parent and ${childSeconds.length} child rounds (at least 2 each, as many)`);
  const logs = parentSeconds.map((p, i) => Math.log(p / childSeconds[i]));
  const sign = signTestInterval(logs, confidence);
  const batches = Math.min(BATCHES, Math.floor(n / 2));
  const drift = batches >= 3 ? batchMeansInterval(logs, batches, confidence) : sign;
  return { estimate: Math.exp(median(logs)), low: Math.exp(Math.min(sign.low, drift.low)), high: Math.exp(Math.max(sign.high, drift.high)), rounds: n, confidence: sign.confidence };
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
