import { median } from '../util/timing.js';
import type { ScenarioTime } from './types.js';

/**
 * Calibration of measured sub-block times against whole models (pure). Sub-blocks are timed alone (a stack of
 * copies, less an empty stack), and their sum with the rest falls short of a whole model's time by what only a
 * whole model pays — per-call and per-layer overheads, caches that no longer hold it — measured 2–30% here. A
 * line fitted through whole-model timings of a few architectures, whole ≈ intercept + slope × (rest + Σ blocks),
 * corrects it; folded into the times (each block × slope, the rest × slope + intercept) it needs no change to the
 * cost model or the MIP, which only ever add times up.
 */
export interface Line {
  readonly intercept: number;
  readonly slope: number;
}

/** Weighted least squares y ≈ intercept + slope·x (each point's squared residual times its weight, 1 by default); at least two distinct x. */
export function fitLine(xs: readonly number[], ys: readonly number[], weights: readonly number[] = xs.map(() => 1)): Line {
  const n = xs.length;
  if (n !== ys.length || n !== weights.length || n < 2) throw new RangeError(`a line through ${n} points (${ys.length} values, ${weights.length} weights)`);
  const sw = weights.reduce((a, b) => a + b, 0);
  const mx = xs.reduce((a, x, i) => a + weights[i] * x, 0) / sw;
  const my = ys.reduce((a, y, i) => a + weights[i] * y, 0) / sw;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += weights[i] * (xs[i] - mx) ** 2;
    sxy += weights[i] * (xs[i] - mx) * (ys[i] - my);
  }
  if (sxx === 0) throw new RangeError('a line through points that share one x');
  const slope = sxy / sxx;
  return { intercept: my - slope * mx, slope };
}

/** One scenario's calibration: a line per phase, and the whole-model timings it was fitted to. */
export interface ScenarioCalibration {
  readonly prefill: Line;
  readonly decode: Line;
  readonly points: readonly { readonly predicted: ScenarioTime; readonly measured: ScenarioTime }[];
}

/**
 * The line through (predicted, measured) pairs per phase, fitted on relative error (weights 1 / measured²):
 * speed-ups are ratios, so a small architecture's time matters as much as the parent's. Unweighted, the
 * parent's large residuals set the line and the smallest architecture was priced 3.7× its measured time. A
 * line that would make a time negative or grow it slower than its sum (slope ≤ 0: timings too noisy to fit)
 * is replaced by the ratio of the totals through 0, which never reorders architectures.
 */
export function calibrationOf(points: ScenarioCalibration['points']): ScenarioCalibration {
  const phase = (of: (t: ScenarioTime) => number): Line => {
    const xs = points.map((p) => of(p.predicted));
    const ys = points.map((p) => of(p.measured));
    const through0 = { intercept: 0, slope: ys.reduce((a, b) => a + b, 0) / xs.reduce((a, b) => a + b, 0) };
    if (new Set(xs).size < 2) return through0;
    const line = fitLine(xs, ys, ys.map((y) => 1 / Math.max(y, Number.MIN_VALUE) ** 2));
    return line.slope > 0 && line.intercept + line.slope * Math.min(...xs) > 0 ? line : through0;
  };
  return { prefill: phase((t) => t.prefillSeconds), decode: phase((t) => t.decodeSeconds), points };
}

/** Times with a calibration folded in: every block's scaled by the slope, the rest also given the intercept. */
export function calibrated(times: Readonly<Record<string, ScenarioTime>>, c: Pick<ScenarioCalibration, 'prefill' | 'decode'>): Record<string, ScenarioTime> {
  return Object.fromEntries(Object.entries(times).map(([key, t]) => {
    const rest = key === 'rest';
    return [key, {
      prefillSeconds: Math.max(0, c.prefill.slope * t.prefillSeconds + (rest ? c.prefill.intercept : 0)),
      decodeSeconds: Math.max(0, c.decode.slope * t.decodeSeconds + (rest ? c.decode.intercept : 0)),
    }];
  }));
}

/**
 * A model's time on the parent's scale: the parent's reference time times the median, over rounds that timed both,
 * of the model's time over the parent's, phase by phase (pure). Models timed one after another each against the
 * parent in alternating rounds are then comparable however the machine's speed drifted between them (measured: one
 * of five whole models timed 30% slow when each was timed alone in turn).
 */
export function onParentScale(parentReference: ScenarioTime, parentRounds: readonly ScenarioTime[], rounds: readonly ScenarioTime[]): ScenarioTime {
  if (parentRounds.length !== rounds.length || rounds.length === 0) throw new RangeError(`${rounds.length} rounds against ${parentRounds.length} of the parent`);
  const of = (phase: (t: ScenarioTime) => number) => {
    const ratios = rounds.map((t, r) => (phase(parentRounds[r]) > 0 ? phase(t) / phase(parentRounds[r]) : 1));
    return phase(parentReference) * median(ratios);
  };
  return { prefillSeconds: of((t) => t.prefillSeconds), decodeSeconds: of((t) => t.decodeSeconds) };
}

/**
 * How far the calibrated sum of blocks misses the whole models it was fitted to: the root mean square of the relative
 * errors of their total times (pure; 0 without points). The search prices each time budget this much tighter, so that
 * a child solved at the budget is not slower than asked by the profile's own known error (formulate).
 */
export function calibrationError(c: ScenarioCalibration): number {
  if (c.points.length === 0) return 0;
  const squares = c.points.map(({ predicted: x, measured: y }) => {
    const fitted = c.prefill.intercept + c.prefill.slope * x.prefillSeconds + c.decode.intercept + c.decode.slope * x.decodeSeconds;
    const measured = y.prefillSeconds + y.decodeSeconds;
    return ((fitted - measured) / measured) ** 2;
  });
  return Math.sqrt(squares.reduce((a, b) => a + b, 0) / squares.length);
}
