import type { ModelConfig } from '../arch/config.js';
import { attentionParams, ffnParams, kvCacheElementsPerToken, nonLayerParams } from '../arch/params.js';
import type { Architecture, AttentionVariant, FfnVariant } from '../arch/variant.js';
import type { CostModel } from './cost-model.js';
import { DTYPE_BYTES, type HardwareProfile, type Scenario, type Workload } from './types.js';

/**
 * Device memory a sub-block holds in a scenario: its weights, and (attention) its K/V cache for the whole
 * batch at the longest context: the prompt and every generated token but the last, which is never fed back.
 */
export interface MemoryBytes {
  readonly weights: number;
  readonly kvCache: number;
}

export function attentionMemory(config: ModelConfig, v: AttentionVariant, s: Scenario, w: Workload): MemoryBytes {
  return {
    weights: attentionParams(config, v) * DTYPE_BYTES[w.weightDtype],
    kvCache: s.batch * (s.prefillTokens + s.generatedTokens - 1) * kvCacheElementsPerToken(config, v) * DTYPE_BYTES[w.kvCacheDtype],
  };
}

export function ffnMemory(config: ModelConfig, v: FfnVariant, w: Workload): MemoryBytes {
  return { weights: ffnParams(config, v) * DTYPE_BYTES[w.weightDtype], kvCache: 0 };
}

export function restMemory(config: ModelConfig, w: Workload): MemoryBytes {
  return { weights: nonLayerParams(config) * DTYPE_BYTES[w.weightDtype], kvCache: 0 };
}

/** What a whole architecture costs in one scenario. Activation memory is not counted (it is small beside weights and cache). */
export interface ScenarioCost {
  readonly scenario: Scenario;
  readonly prefillSeconds: number;
  /** All decode steps together. */
  readonly decodeSeconds: number;
  readonly decodeSecondsPerToken: number;
  readonly totalSeconds: number;
  /** Generated tokens per second over the whole scenario: batch × generated / total time. */
  readonly tokensPerSecond: number;
  readonly weightBytes: number;
  readonly kvCacheBytes: number;
  readonly memoryBytes: number;
  readonly fitsInMemory: boolean;
}

export function architectureCost(config: ModelConfig, arch: Architecture, profile: HardwareProfile, costs: CostModel): ScenarioCost[] {
  const w = profile.workload;
  return w.scenarios.map((s) => {
    let prefill = costs.rest(s).prefillSeconds;
    let decode = costs.rest(s).decodeSeconds;
    let { weights, kvCache } = restMemory(config, w);
    for (const b of arch) {
      const a = costs.attention(b.attention, s);
      const f = costs.ffn(b.ffn, s);
      prefill += a.prefillSeconds + f.prefillSeconds;
      decode += a.decodeSeconds + f.decodeSeconds;
      const am = attentionMemory(config, b.attention, s, w);
      const fm = ffnMemory(config, b.ffn, w);
      weights += am.weights + fm.weights;
      kvCache += am.kvCache + fm.kvCache;
    }
    ({ prefillSeconds: prefill, decodeSeconds: decode } = costs.whole({ prefillSeconds: prefill, decodeSeconds: decode }, s));
    const total = prefill + decode;
    return {
      scenario: s,
      prefillSeconds: prefill,
      decodeSeconds: decode,
      decodeSecondsPerToken: s.generatedTokens > 1 ? decode / (s.generatedTokens - 1) : 0,
      totalSeconds: total,
      tokensPerSecond: (s.batch * s.generatedTokens) / total,
      weightBytes: weights,
      kvCacheBytes: kvCache,
      memoryBytes: weights + kvCache,
      fitsInMemory: weights + kvCache <= profile.device.memoryCapacity,
    };
  });
}
