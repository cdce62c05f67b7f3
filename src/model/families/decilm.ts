import type { ModelConfig } from '../../arch/config.js';
import { deciSlidingWindow, fromDeciBlockConfigs } from '../../arch/decilm.js';
import { kindOf } from '../../arch/variants/registry.js';
import type { Architecture } from '../../arch/variant.js';
import { HF_TENSOR_NAMES, readLlamaCore, type ModelFamily } from './family.js';

/** config.json keys under which a DeciLM child records its family's features (HF's DeciLM code ignores them). */
export const TESSERA_FEATURES = { qkvBias: 'tessera_qkv_bias', qkNorm: 'tessera_qk_norm' } as const;

/**
 * DeciLM / Nemotron-NAS (`model_type: "nemotron-nas"`): a Llama whose layers each say their own attention
 * and FFN in `block_configs` — what Tessera exports, and what NVIDIA's Puzzle models are.
 */
export const decilm: ModelFamily = {
  name: 'decilm',
  architectures: ['DeciLMForCausalLM'],
  read: (f, source) => {
    // DeciLM writes null for the global K/V heads and FFN width; the per-layer block_configs say them.
    // Children of families with features DeciLM cannot express record them under Tessera's own keys;
    // a sliding window is DeciLM's own per-layer window_length.
    const parsed = readLlamaCore(f, source, { slidingWindow: deciSlidingWindow(f.file, f.obj.block_configs), optionalSizes: true, qkvBias: f.boolean(TESSERA_FEATURES.qkvBias, false), qkNorm: f.boolean(TESSERA_FEATURES.qkNorm, false) });
    const architecture = fromDeciBlockConfigs(f.file, parsed, f.obj.block_configs);
    return { config: withParentSizes(parsed, architecture), architecture };
  },
  tensorNames: HF_TENSOR_NAMES,
};

/** Where the global sizes are null, the widest layer's K/V heads and FFN width stand for the parent's. */
function withParentSizes(config: ModelConfig, arch: Architecture): ModelConfig {
  let kv = 0;
  let ffn = 0;
  for (const b of arch) {
    kv = Math.max(kv, kindOf('attention', b.attention).cachedKvHeads(config, b.attention));
    if (b.ffn.kind === 'swiglu') ffn = Math.max(ffn, b.ffn.intermediate);
  }
  return { ...config, numKvHeads: kv || config.numKvHeads, intermediateSize: ffn || config.intermediateSize };
}
