import type { ModelConfig } from '../arch/config.js';
import type { Architecture } from '../arch/variant.js';
import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { checkpointTensorSpecs, inMemory, layerWeightsFrom, withLayers, type ModelWeights, type WeightSource } from './weights.js';

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
 * Timing weights for many architectures of one model from one pool, as sources: a tensor of each shape drawn once (as
 * `timingWeights` draws it), and each layer's tensor that one rotated by an offset of its own to the layer and the
 * tensor — the same values in another order, so that no two tensors of a model are equal. Layers that all held one
 * tensor ran the SmolLM2-135M shape's parent 1.35–1.39× faster than distinct weights (batch-8; though each layer's
 * copy is written to the graph apart — why equal tensors run faster was not established), which calibrated whole
 * models too fast; rotated ones run as distinct random weights do. Rotated copies are made when a build asks
 * for a layer and dropped with it, so a dozen calibration models hold one tensor per shape, not a dozen models (gigabytes
 * at the SmolLM2-135M shape). An untied LM head is drawn apart from the embedding, so that the head is not taken for a
 * tied one.
 */
export function timingWeightPool(config: ModelConfig, rng: Rng): (arch: Architecture) => WeightSource {
  const draw = drawnBy(uniformDraw(rng));
  const pool = new Map<string, Tensor>();
  const base: TensorMaker = (shape, role) => {
    const id = `${role === 'head' ? 'head ' : ''}${shape.join('x')}`;
    let t = pool.get(id);
    if (t === undefined) pool.set(id, (t = draw(shape, role)));
    return t;
  };
  return (arch) => {
    const specs = checkpointTensorSpecs(config, arch);
    const embed = base(specs.embed.shape, 'other');
    const ends = inMemory({ embed, layers: [], finalNorm: base(specs.finalNorm.shape, 'other'), lmHead: specs.lmHead === null ? embed : base(specs.lmHead.shape, 'head') });
    // The tensors of one shape, in order, each rotated by its own multiple of a stride that keeps them apart.
    const ofShape = new Map<string, { size: number; tensors: string[] }>();
    specs.layers.forEach((l, i) => Object.entries(l).forEach(([key, spec]) => {
      const id = spec.shape.join('x');
      const group = ofShape.get(id) ?? { size: spec.shape.reduce((a, d) => a * d, 1), tensors: [] };
      group.tensors.push(`${i} ${key}`);
      ofShape.set(id, group);
    }));
    const offsets = new Map<string, number>();
    for (const { size, tensors } of ofShape.values()) {
      const stride = Math.max(1, Math.floor(size / (tensors.length + 1)));
      tensors.forEach((t, j) => offsets.set(t, (j + 1) * stride));
    }
    return withLayers(ends, arch, (i) => layerWeightsFrom(config, arch[i], (key) => {
      const t = base(specs.layers[i][key].shape, 'other');
      return { data: rotated(t.data, offsets.get(`${i} ${key}`)!), shape: t.shape };
    }));
  };
}

/** `data` rotated left by `offset` elements: a copy holding the same values, starting at `data[offset]`. */
export function rotated(data: Float32Array, offset: number): Float32Array {
  const k = ((offset % data.length) + data.length) % data.length;
  const out = new Float32Array(data.length);
  out.set(data.subarray(k));
  out.set(data.subarray(0, k), data.length - k);
  return out;
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
