import { totalSeconds, type ScenarioTime } from './types.js';

/**
 * A whole model's time as a power of the sum of its measured blocks (pure): total = coefficient × Σ^exponent.
 * Measured single-prompt here, whole models cost relatively more the fewer blocks they keep (whole / sum 1.64 for the
 * empty model, 1.41 at 3 ms of blocks, 1.20 for the parent, babyllama): no line through those points fits both ends,
 * and children cut to ×3 were predicted up to 31% too fast. The law is monotone, so a budget on whole-model time is
 * still a budget on the sum (`sumWithin`), which the search adds up as before. Fitted by `fitPowerLaw` (calibrate.ts).
 */
export interface PowerLaw {
  readonly coefficient: number;
  readonly exponent: number;
}

/** A whole model's total seconds from the sum of its blocks' seconds. */
export const wholeSeconds = (law: PowerLaw, sum: number): number => law.coefficient * Math.max(0, sum) ** law.exponent;

/** The largest sum of blocks whose whole model takes at most `seconds` (the inverse of `wholeSeconds`). */
export const sumWithin = (law: PowerLaw, seconds: number): number => (Math.max(0, seconds) / law.coefficient) ** (1 / law.exponent);

/** A whole model's time by phase: the law's total shared between prefill and decode as their sums share it. */
export function wholeTime(law: PowerLaw, sum: ScenarioTime): ScenarioTime {
  const total = totalSeconds(sum);
  if (total <= 0) return { prefillSeconds: 0, decodeSeconds: 0 };
  const scale = wholeSeconds(law, total) / total;
  return { prefillSeconds: scale * sum.prefillSeconds, decodeSeconds: scale * sum.decodeSeconds };
}
