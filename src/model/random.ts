import type { ModelConfig } from '../arch/config.js';
import type { Architecture } from '../arch/variant.js';
import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { checkpointTensorSpecs, layerWeightsFrom, type ModelWeights } from './weights.js';

/**
 * Seeded random weights for any architecture: for tests, and for speed benchmarks at real models'
 * shapes (whose values do not matter). Norm weights scatter around 1, matrices are scaled like a
 * trained model's so activations stay in a sane range through many layers.
 */
export function randomWeights(config: ModelConfig, arch: Architecture, rng: Rng): ModelWeights {
  const specs = checkpointTensorSpecs(config, arch);
  const make = (shape: readonly number[]): Tensor => {
    if (shape.length === 1) {
      const data = new Float32Array(shape[0]);
      for (let i = 0; i < data.length; i++) data[i] = 1 + 0.1 * rng.normal();
      return { data, shape };
    }
    return { data: rng.normalArray(shape[0] * shape[1], 1 / Math.sqrt(shape[1])), shape };
  };
  const embed = make(specs.embed.shape);
  return {
    embed,
    layers: arch.map((block, i) => layerWeightsFrom(config, block, (key) => make(specs.layers[i][key].shape))),
    finalNorm: make(specs.finalNorm.shape),
    lmHead: specs.lmHead === null ? embed : make(specs.lmHead.shape),
  };
}

/** A Llama-style config.json object for the given sizes (the HF field names). */
export function llamaConfigJson(sizes: {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  vocab: number;
  headDim?: number;
  maxPositions?: number;
  tied?: boolean;
  ropeTheta?: number;
  ropeScaling?: Record<string, unknown> | null;
  slidingWindow?: number | null;
  architecture?: string;
}): Record<string, unknown> {
  return {
    architectures: [sizes.architecture ?? 'LlamaForCausalLM'],
    model_type: sizes.architecture === 'MistralForCausalLM' ? 'mistral' : 'llama',
    hidden_size: sizes.hidden,
    intermediate_size: sizes.intermediate,
    num_hidden_layers: sizes.layers,
    num_attention_heads: sizes.heads,
    num_key_value_heads: sizes.kvHeads,
    head_dim: sizes.headDim ?? sizes.hidden / sizes.heads,
    vocab_size: sizes.vocab,
    max_position_embeddings: sizes.maxPositions ?? 2048,
    rms_norm_eps: 1e-5,
    rope_theta: sizes.ropeTheta ?? 10000,
    rope_scaling: sizes.ropeScaling ?? null,
    sliding_window: sizes.slidingWindow ?? null,
    hidden_act: 'silu',
    tie_word_embeddings: sizes.tied ?? true,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'float32',
  };
}
