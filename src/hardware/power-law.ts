import type { ScenarioTime } from './types.js';

/**
 * A whole model's time as a power of the sum of its measured blocks (pure): total = coefficient × Σ^exponent.
 * Measured single-prompt here, whole models cost relatively more the fewer blocks they keep (whole / sum 1.64 for the
 * empty model, 1.41 at 3 ms of blocks, 1.20 for the parent, babyllama): no line through those points fits both ends,
 * and children cut to ×3 were predicted up to 31% too fast. The law is monotone, so a budget on whole-model time is
 * still a budget on the sum (`sumWithin`), which the search adds up as before.
 */
export interface PowerLaw {
  readonly coefficient: number;
  readonly exponent: number;
}

/**
 * Least squares of log y on log x: relative errors, as speed-ups are ratios. Null where no increasing law fits (fewer
 * than two distinct sums, or an exponent ≤ 0: timings too noisy to say).
 */
export function fitPowerLaw(sums: readonly number[], wholes: readonly number[]): PowerLaw | null {
  const n = sums.length;
  if (n !== wholes.length) throw new RangeError(`${n} sums against ${wholes.length} whole-model times`);
  if (sums.some((x) => !(x > 0)) || wholes.some((y) => !(y > 0))) throw new RangeError('a power law through times ≤ 0');
  const lx = sums.map(Math.log);
  const ly = wholes.map(Math.log);
  const mx = lx.reduce((a, b) => a + b, 0) / n;
  const my = ly.reduce((a, b) => a + b, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (lx[i] - mx) ** 2;
    sxy += (lx[i] - mx) * (ly[i] - my);
  }
  if (!(sxx > 1e-18)) return null;
  const exponent = sxy / sxx;
  return exponent > 0 ? { coefficient: Math.exp(my - exponent * mx), exponent } : null;
}

/** A whole model's total seconds from the sum of its blocks' seconds. */
export const wholeSeconds = (law: PowerLaw, sum: number): number => law.coefficient * Math.max(0, sum) ** law.exponent;

/** The largest sum of blocks whose whole model takes at most `seconds` (the inverse of `wholeSeconds`). */
export const sumWithin = (law: PowerLaw, seconds: number): number => (Math.max(0, seconds) / law.coefficient) ** (1 / law.exponent);

/** A whole model's time by phase: the law's total shared between prefill and decode as their sums share it. */
export function wholeTime(law: PowerLaw, sum: ScenarioTime): ScenarioTime {
  const total = sum.prefillSeconds + sum.decodeSeconds;
  if (total <= 0) return { prefillSeconds: 0, decodeSeconds: 0 };
  const scale = wholeSeconds(law, total) / total;
  return { prefillSeconds: scale * sum.prefillSeconds, decodeSeconds: scale * sum.decodeSeconds };
}
