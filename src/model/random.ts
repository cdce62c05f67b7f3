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
  return weightsDrawn(config, arch, drawnBy((n, mean, std) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * rng.normal();
    return out;
  }));
}

/** Uniform noise of a given mean and standard deviation: about ten times quicker to draw than normal. */
const uniformDraw = (rng: Rng) => (n: number, mean: number, std: number): Float32Array => {
  const out = new Float32Array(n);
  const half = std * Math.sqrt(3);
  for (let i = 0; i < n; i++) out[i] = mean + (2 * rng.next() - 1) * half;
  return out;
};

/**
 * Weights only to time a graph with: uniform noise of the same scale, about ten times quicker to draw than normal
 * (a 135M model's in about a second instead of ten); a graph's speed does not depend on its values.
 */
export function timingWeights(config: ModelConfig, arch: Architecture, rng: Rng): ModelWeights {
  return weightsDrawn(config, arch, drawnBy(uniformDraw(rng)));
}

/**
 * Timing weights for many architectures of one model from one pool: a tensor of each shape drawn once (as
 * `timingWeights` draws it) and shared by every layer and architecture that has that shape, as a graph's speed does not
 * depend on its values. A dozen calibration models timed in the same rounds then hold about one layer per variant, not a
 * dozen models (gigabytes at the SmolLM2-135M shape). An untied LM head is drawn apart from the embedding, so that the head
 * is not taken for a tied one.
 */
export function timingWeightPool(config: ModelConfig, rng: Rng): (arch: Architecture) => ModelWeights {
  const draw = drawnBy(uniformDraw(rng));
  const pool = new Map<string, Tensor>();
  return (arch) => weightsDrawn(config, arch, (shape, role) => {
    const id = `${role === 'head' ? 'head ' : ''}${shape.join('x')}`;
    let t = pool.get(id);
    if (t === undefined) pool.set(id, (t = draw(shape, role)));
    return t;
  });
}

type TensorMaker = (shape: readonly number[], role: 'head' | 'other') => Tensor;

/** Tensors drawn with `draw(count, mean, std)`: matrices at std 1/√fan-in, norms around 1 (std 0.1). */
const drawnBy = (draw: (n: number, mean: number, std: number) => Float32Array): TensorMaker => (shape) =>
  shape.length === 1 ? { data: draw(shape[0], 1, 0.1), shape } : { data: draw(shape[0] * shape[1], 0, 1 / Math.sqrt(shape[1])), shape };

/** Every tensor of an architecture, each from `make`. */
function weightsDrawn(config: ModelConfig, arch: Architecture, make: TensorMaker): ModelWeights {
  const specs = checkpointTensorSpecs(config, arch);
  const embed = make(specs.embed.shape, 'other');
  return {
    embed,
    layers: arch.map((block, i) => layerWeightsFrom(config, block, (key) => make(specs.layers[i][key].shape, 'other'))),
    finalNorm: make(specs.finalNorm.shape, 'other'),
    lmHead: specs.lmHead === null ? embed : make(specs.lmHead.shape, 'head'),
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
