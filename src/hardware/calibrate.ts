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

/** Least squares y ≈ intercept + slope·x; at least two distinct x. */
export function fitLine(xs: readonly number[], ys: readonly number[]): Line {
  const n = xs.length;
  if (n !== ys.length || n < 2) throw new RangeError(`a line through ${n} points (${ys.length} values)`);
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (xs[i] - mx) ** 2;
    sxy += (xs[i] - mx) * (ys[i] - my);
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
 * The line through (predicted, measured) pairs per phase. A line that would make a time negative or grow it
 * slower than its sum (slope ≤ 0: timings too noisy to fit) is replaced by the ratio of the totals through 0,
 * which never reorders architectures.
 */
export function calibrationOf(points: ScenarioCalibration['points']): ScenarioCalibration {
  const phase = (of: (t: ScenarioTime) => number): Line => {
    const xs = points.map((p) => of(p.predicted));
    const ys = points.map((p) => of(p.measured));
    const through0 = { intercept: 0, slope: ys.reduce((a, b) => a + b, 0) / xs.reduce((a, b) => a + b, 0) };
    if (new Set(xs).size < 2) return through0;
    const line = fitLine(xs, ys);
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
