import type { ModelConfig, RopeScaling } from '../../arch/config.js';
import type { Architecture } from '../../arch/variant.js';
import type { FieldReader } from '../json.js';

/** Checkpoint names of the weights outside the layers, and where a layer's tensors live. */
export interface TensorNames {
  readonly embed: string;
  readonly finalNorm: string;
  readonly lmHead: string;
  /** The prefix of layer i's tensor names (each variant kind names its own after it). */
  layerPrefix(layer: number): string;
}

/** HuggingFace's names, shared by every Llama-shaped family. */
export const HF_TENSOR_NAMES: TensorNames = {
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
  layerPrefix: (i) => `model.layers.${i}.`,
};

/**
 * A model family: the HuggingFace architectures it reads, the config fields it adds to the Llama core
 * (read into the features `ModelConfig` carries: sliding window, RoPE scaling, …) and its tensor names.
 * Graphs, the reference forward and initialisations read features, never a family's name. A new family is
 * one file here and a line in `registry.ts`.
 */
export interface ModelFamily {
  readonly name: string;
  /** `architectures[0]` values of config.json that this family reads. */
  readonly architectures: readonly string[];
  /** The global config and the per-layer architecture a config.json describes. */
  read(f: FieldReader, sourceArchitecture: string): { config: ModelConfig; architecture: Architecture | null };
  readonly tensorNames: TensorNames;
}

/** Qwen's sliding window applies to some layers only (from max_window_layers on); Tessera computes full attention everywhere. */
export function refuseLayerwiseWindow(f: FieldReader): void {
  if (f.boolean('use_sliding_window', false)) f.problem('use_sliding_window', 'false (sliding-window attention in some layers only is not supported)');
}

/**
 * The fields every Llama-shaped decoder shares (RMSNorm, RoPE, GQA, SwiGLU), with the family's own choices
 * given: a sliding window, and whether the global K/V heads and FFN width may be absent (DeciLM's nulls).
 */
export function readLlamaCore(
  f: FieldReader,
  sourceArchitecture: string,
  o: { slidingWindow: number | null; optionalSizes?: boolean; qkvBias?: boolean; qkNorm?: boolean },
): ModelConfig {
  // Llama's and Qwen3's attention_bias adds a bias to the output projection too, which no variant computes.
  if (f.boolean('attention_bias', false)) f.problem('attention_bias', 'false (biases on every attention projection are not supported)');
  if (f.boolean('mlp_bias', false)) f.problem('mlp_bias', 'false (FFN biases are not supported)');
  const act = f.string('hidden_act');
  if (act !== null && act !== 'silu') f.problem('hidden_act', '"silu" (SwiGLU)');

  const hiddenSize = f.positiveInt('hidden_size');
  const numHeads = f.positiveInt('num_attention_heads');
  const numKvHeads = o.optionalSizes && !f.has('num_key_value_heads') ? numHeads : f.positiveInt('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) f.problem('num_key_value_heads', `a divisor of num_attention_heads (${numHeads})`);
  const headDim = f.positiveInt('head_dim', hiddenSize / numHeads);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    f.problem('head_dim', 'an even integer (RoPE rotates pairs); hidden_size / num_attention_heads is not one');
  }
  return {
    sourceArchitecture,
    hiddenSize,
    numLayers: f.positiveInt('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: o.optionalSizes && !f.has('intermediate_size') ? 0 : f.positiveInt('intermediate_size'),
    vocabSize: f.positiveInt('vocab_size'),
    rmsNormEps: f.positiveNumber('rms_norm_eps', 1e-6),
    ropeTheta: f.positiveNumber('rope_theta', 10000),
    ropeScaling: readRopeScaling(f),
    maxPositions: f.positiveInt('max_position_embeddings', 2048),
    tieEmbeddings: f.boolean('tie_word_embeddings', false),
    slidingWindow: o.slidingWindow,
    qkvBias: o.qkvBias ?? false,
    qkNorm: o.qkNorm ?? false,
    bosTokenId: f.intList('bos_token_id')[0] ?? null,
    eosTokenIds: f.intList('eos_token_id'),
  };
}

function readRopeScaling(f: FieldReader): RopeScaling | null {
  const s = f.object('rope_scaling');
  if (s === null) return null;
  const type = s.string('rope_type') ?? s.string('type');
  if (type === null || type === 'default') return null;
  if (type === 'linear') return { type, factor: s.positiveNumber('factor') };
  if (type === 'llama3') {
    return {
      type,
      factor: s.positiveNumber('factor'),
      lowFreqFactor: s.positiveNumber('low_freq_factor'),
      highFreqFactor: s.positiveNumber('high_freq_factor'),
      originalMaxPositions: s.positiveInt('original_max_position_embeddings'),
    };
  }
  return s.problem('rope_type', '"default", "linear" or "llama3" (other RoPE scalings are not supported yet)');
}
