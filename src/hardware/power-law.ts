import { totalSeconds, type ScenarioTime } from './types.js';

/**
 * A whole model's time as a power of the sum of its measured blocks (pure): total = offset + coefficient × Σ^exponent.
 * Measured single-prompt here, whole models cost relatively more the fewer blocks they keep (whole / sum 1.64 for the
 * empty model, 1.41 at 3 ms of blocks, 1.20 for the parent, babyllama): no line through those points fits both ends,
 * and children cut to ×3 were predicted up to 31% too fast. The offset is there because a pure power law, bent to the
 * parent and the mid-sized models, still priced babyllama's sparsest ones 4–8% too cheap, and its children 5–11% too
 * fast. The law is monotone, so a budget on whole-model time is still a budget on the sum (`sumWithin`), which the
 * search adds up as before. Fitted by `fitPowerLaw` and `fitOffsetPowerLaw` (calibrate.ts).
 */
export interface PowerLaw {
  readonly coefficient: number;
  readonly exponent: number;
  /** Seconds added to every whole model, of either sign (absent: 0); the fit keeps every calibration model's time > 0. */
  readonly offset?: number;
}

/** A whole model's total seconds from the sum of its blocks' seconds (never below 0). */
export const wholeSeconds = (law: PowerLaw, sum: number): number => Math.max(0, (law.offset ?? 0) + law.coefficient * Math.max(0, sum) ** law.exponent);

/** The largest sum of blocks whose whole model takes at most `seconds` (the inverse of `wholeSeconds` where that is > 0). */
export const sumWithin = (law: PowerLaw, seconds: number): number => (Math.max(0, seconds - (law.offset ?? 0)) / law.coefficient) ** (1 / law.exponent);

/** A whole model's time by phase: the law's total shared between prefill and decode as their sums share it. */
export function wholeTime(law: PowerLaw, sum: ScenarioTime): ScenarioTime {
  const total = totalSeconds(sum);
  if (total <= 0) return { prefillSeconds: 0, decodeSeconds: 0 };
  const scale = wholeSeconds(law, total) / total;
  return { prefillSeconds: scale * sum.prefillSeconds, decodeSeconds: scale * sum.decodeSeconds };
}
