/**
 * Confidence intervals of speed-ups from paired timings (pure). Each round times every model once, so the
 * machine's drift within a round falls on both; a round's ratio parent / child is one sample of the speed-up.
 * Ratios are averaged on the log scale (a ×2 and a ×0.5 round cancel), and the interval is Student's t on the
 * log-ratios' mean, mapped back: a geometric mean with its 95% interval.
 */

/** A speed-up with its interval: `low ≤ estimate ≤ high`, from `rounds` paired samples. */
export interface SpeedupInterval {
  readonly estimate: number;
  readonly low: number;
  readonly high: number;
  readonly rounds: number;
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

/** The density of Student's t with `df` degrees of freedom. */
export function tDensity(x: number, df: number): number {
  return Math.exp(logGamma((df + 1) / 2) - logGamma(df / 2) - 0.5 * Math.log(df * Math.PI) - ((df + 1) / 2) * Math.log1p((x * x) / df));
}

/** P(T ≤ x) for x ≥ 0: one half plus the density's integral from 0 (Simpson's rule on 2000 panels, error far below 1e-9 for x ≤ 100). */
function tCdf(x: number, df: number): number {
  const n = 2000;
  const h = x / n;
  let s = tDensity(0, df) + tDensity(x, df);
  for (let i = 1; i < n; i++) s += (i % 2 ? 4 : 2) * tDensity(i * h, df);
  return 0.5 + (s * h) / 3;
}

const quantiles = new Map<string, number>();

/** The two-sided `confidence` quantile of Student's t (0.95 → the 97.5th percentile), by bisection on its CDF (remembered). */
export function tQuantile(df: number, confidence = 0.95): number {
  if (!(df >= 1) || !(confidence > 0 && confidence < 1)) throw new RangeError(`t quantile of df ${df} at ${confidence}`);
  const key = `${df} ${confidence}`;
  let q = quantiles.get(key);
  if (q === undefined) quantiles.set(key, (q = bisectQuantile(df, confidence)));
  return q;
}

function bisectQuantile(df: number, confidence: number): number {
  const p = 0.5 + confidence / 2;
  let [lo, hi] = [0, 1];
  while (tCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (tCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The speed-up of `child` over `parent` (seconds of each round, paired by index) with its 95% interval; at least 2 rounds. */
export function speedupInterval(parentSeconds: readonly number[], childSeconds: readonly number[], confidence = 0.95): SpeedupInterval {
  const n = parentSeconds.length;
  if (n !== childSeconds.length || n < 2) throw new RangeError(`paired timings: ${n} parent and ${childSeconds.length} child rounds (at least 2 each, as many)`);
  const logs = parentSeconds.map((p, i) => Math.log(p / childSeconds[i]));
  const mean = logs.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(logs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const half = (tQuantile(n - 1, confidence) * sd) / Math.sqrt(n);
  return { estimate: Math.exp(mean), low: Math.exp(mean - half), high: Math.exp(mean + half), rounds: n };
}

/** The interval holds 1: the timings cannot tell the child from its parent. */
export const withinNoise = (s: SpeedupInterval): boolean => s.low <= 1 && 1 <= s.high;

/** The interval is at most ±`precision` around its estimate (on the log scale: high / low ≤ ((1 + p) / (1 − p))). */
export const preciseEnough = (s: SpeedupInterval, precision: number): boolean => s.high / s.low <= (1 + precision) / (1 - precision);

/** "×1.52 (1.45–1.60)", or "within noise (×0.98, 0.91–1.06)" when the interval holds 1. */
export function describeSpeedup(s: SpeedupInterval): string {
  const body = `×${s.estimate.toFixed(2)} (95%: ${s.low.toFixed(2)}–${s.high.toFixed(2)}, ${s.rounds} rounds)`;
  return withinNoise(s) ? `within noise: ${body}` : body;
}
