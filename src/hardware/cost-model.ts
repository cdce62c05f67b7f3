import type { ModelConfig } from '../arch/config.js';
import { attentionKey, ffnKey } from '../arch/variants/registry.js';
import { type AttentionVariant, type FfnVariant } from '../arch/variant.js';
import { fail } from '../util/errors.js';
import { sumWithin, wholeTime } from './power-law.js';
import { attentionKernels, ffnKernels, kernelSeconds, restKernels, type Kernel, type Step } from './roofline.js';
import type { HardwareProfile, Scenario, ScenarioTime } from './types.js';

/**
 * What each candidate costs in time, per scenario. Costs are additive over layers, which is what lets
 * the search price an architecture as a sum of per-layer choices.
 */
export interface CostModel {
  readonly source: 'roofline' | 'measured';
  attention(v: AttentionVariant, s: Scenario): ScenarioTime;
  ffn(v: FfnVariant, s: Scenario): ScenarioTime;
  /** Everything outside the layers: embeddings, final norm, LM head and the fixed cost of each forward call. */
  rest(s: Scenario): ScenarioTime;
  /** A whole model's time from the sum of its sub-blocks' and rest's times (that sum itself where times add up as they are). */
  whole(sum: ScenarioTime, s: Scenario): ScenarioTime;
  /** The largest sum of times (prefill and decode together) whose whole model takes at most `seconds`: the inverse of `whole` on totals. */
  sumWithin(seconds: number, s: Scenario): number;
}

/** Times that add up to a whole model's as they are. */
export const ADDITIVE: Pick<CostModel, 'whole' | 'sumWithin'> = { whole: (sum) => sum, sumWithin: (seconds) => seconds };

/**
 * The steps of a scenario: one prefill of the prompt (which yields the first new token), then one decode
 * step per further token, each attending to everything before it.
 */
export function decodeSteps(s: Scenario): Step[] {
  return Array.from({ length: s.generatedTokens - 1 }, (_, t) => ({ batch: s.batch, tokens: 1, pastTokens: s.prefillTokens + t }));
}

export function prefillStep(s: Scenario): Step {
  return { batch: s.batch, tokens: s.prefillTokens, pastTokens: 0 };
}

/** The roofline cost model: each kernel bound by compute or bandwidth, from the profile's device numbers. */
export function rooflineCostModel(config: ModelConfig, profile: HardwareProfile): CostModel {
  const { device, workload } = profile;
  if (device.peakFlops[workload.activationDtype] === undefined) {
    fail(`${profile.file}: field "device.peakTflops.${workload.activationDtype}" is missing; workload.activationDtype needs it`);
  }
  const seconds = (kernels: (step: Step) => Kernel[], s: Scenario, perStep = 0): ScenarioTime => {
    const time = (step: Step) => kernels(step).reduce((t, k) => t + kernelSeconds(k, device, workload), perStep);
    return { prefillSeconds: time(prefillStep(s)), decodeSeconds: decodeSteps(s).reduce((t, step) => t + time(step), 0) };
  };
  // Costs depend on the variant and the scenario only, not on the layer: compute each once.
  const cache = new Map<string, ScenarioTime>();
  const once = (key: string, s: Scenario, f: () => ScenarioTime): ScenarioTime => {
    const k = `${s.name}|${key}`;
    let t = cache.get(k);
    if (t === undefined) cache.set(k, (t = f()));
    return t;
  };
  return {
    source: 'roofline',
    attention: (v, s) => once(attentionKey(v), s, () => seconds((step) => attentionKernels(config, v, step, workload), s)),
    ffn: (v, s) => once(ffnKey(v), s, () => seconds((step) => ffnKernels(config, v, step, workload), s)),
    rest: (s) => once('rest', s, () => seconds((step) => restKernels(config, step, workload), s, device.stepOverhead)),
    ...ADDITIVE,
  };
}

/** Latencies measured on the device by `tessera profile`, for the model it measured; a scenario calibrated by a power law prices whole models by it. */
export function measuredCostModel(config: ModelConfig, profile: HardwareProfile): CostModel {
  const m = profile.measured;
  if (m === null) fail(`${profile.file}: has no "measured" section; run \`tessera profile\` to make one`);
  const shape = m.model;
  if (shape.hiddenSize !== config.hiddenSize || shape.numHeads !== config.numHeads || shape.headDim !== config.headDim || shape.vocabSize !== config.vocabSize) {
    fail(`${profile.file}: measured for a model of hidden ${shape.hiddenSize}, ${shape.numHeads} heads of ${shape.headDim}, vocab ${shape.vocabSize}; this model differs (hidden ${config.hiddenSize}, ${config.numHeads} heads of ${config.headDim}, vocab ${config.vocabSize})`);
  }
  const lookup = (key: string, s: Scenario): ScenarioTime => {
    const t = m.scenarios[s.name]?.[key];
    if (t === undefined) fail(`${profile.file}: no measured time for "${key}" in scenario "${s.name}"; rerun \`tessera profile\` with a space that includes it`);
    return t;
  };
  return {
    source: 'measured',
    attention: (v, s) => lookup(attentionKey(v), s),
    ffn: (v, s) => lookup(ffnKey(v), s),
    rest: (s) => lookup('rest', s),
    whole: (sum, s) => {
      const law = m.calibration?.[s.name]?.power;
      return law === undefined ? sum : wholeTime(law, sum);
    },
    sumWithin: (seconds, s) => {
      const law = m.calibration?.[s.name]?.power;
      return law === undefined ? seconds : sumWithin(law, seconds);
    },
  };
}

/** The measured model when the profile has one, else the roofline. */
export function costModelFor(config: ModelConfig, profile: HardwareProfile): CostModel {
  return profile.measured !== null ? measuredCostModel(config, profile) : rooflineCostModel(config, profile);
}
