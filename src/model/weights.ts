import type { ModelConfig } from '../arch/config.js';
import type { Architecture, AttentionVariant, BlockConfig, FfnVariant } from '../arch/types.js';
import type { Tensor } from '../util/tensor.js';

/** Linear weights keep HuggingFace's nn.Linear layout: [out_features, in_features]. */
export type AttentionWeights =
  | { readonly kind: 'gqa'; readonly norm: Tensor; readonly q: Tensor; readonly k: Tensor; readonly v: Tensor; readonly o: Tensor }
  | { readonly kind: 'linear'; readonly norm: Tensor; readonly weight: Tensor }
  | { readonly kind: 'noop' };

export type FfnWeights =
  | { readonly kind: 'swiglu'; readonly norm: Tensor; readonly gate: Tensor; readonly up: Tensor; readonly down: Tensor }
  | { readonly kind: 'linear'; readonly norm: Tensor; readonly weight: Tensor }
  | { readonly kind: 'noop' };

export interface LayerWeights {
  readonly attention: AttentionWeights;
  readonly ffn: FfnWeights;
}

export interface ModelWeights {
  readonly embed: Tensor;
  readonly layers: readonly LayerWeights[];
  readonly finalNorm: Tensor;
  /** The same object as `embed` when the embeddings are tied. */
  readonly lmHead: Tensor;
}

export function attentionVariantOf(config: ModelConfig, w: AttentionWeights): AttentionVariant {
  return w.kind === 'gqa' ? { kind: 'gqa', kvHeads: w.k.shape[0] / config.headDim } : { kind: w.kind };
}

export function ffnVariantOf(w: FfnWeights): FfnVariant {
  return w.kind === 'swiglu' ? { kind: 'swiglu', intermediate: w.gate.shape[0] } : { kind: w.kind };
}

/** The architecture that a set of weights implements. */
export function architectureOf(config: ModelConfig, weights: ModelWeights): Architecture {
  return weights.layers.map((l): BlockConfig => ({ attention: attentionVariantOf(config, l.attention), ffn: ffnVariantOf(l.ffn) }));
}

/** One tensor a layer of this architecture needs, under its HuggingFace / DeciLM name. */
export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

/**
 * The tensors of a checkpoint with this architecture, by HuggingFace name: Llama's names for GQA and
 * SwiGLU sub-blocks, DeciLM's (`self_attn.linear_attn`, `mlp.linear_mlp`) for linear ones; no-op
 * sub-blocks have no tensors, not even their norm.
 */
export function checkpointTensorSpecs(config: ModelConfig, arch: Architecture): { layers: Record<string, TensorSpec>[]; embed: TensorSpec; finalNorm: TensorSpec; lmHead: TensorSpec | null } {
  const E = config.hiddenSize;
  const D = config.headDim;
  const layers = arch.map((block, i) => {
    const p = `model.layers.${i}.`;
    const specs: Record<string, TensorSpec> = {};
    const add = (key: string, name: string, shape: number[]) => (specs[key] = { name: p + name, shape });
    const a = block.attention;
    if (a.kind !== 'noop') add('attention.norm', 'input_layernorm.weight', [E]);
    if (a.kind === 'gqa') {
      add('attention.q', 'self_attn.q_proj.weight', [config.numHeads * D, E]);
      add('attention.k', 'self_attn.k_proj.weight', [a.kvHeads * D, E]);
      add('attention.v', 'self_attn.v_proj.weight', [a.kvHeads * D, E]);
      add('attention.o', 'self_attn.o_proj.weight', [E, config.numHeads * D]);
    } else if (a.kind === 'linear') {
      add('attention.weight', 'self_attn.linear_attn.weight', [E, E]);
    }
    const f = block.ffn;
    if (f.kind !== 'noop') add('ffn.norm', 'post_attention_layernorm.weight', [E]);
    if (f.kind === 'swiglu') {
      add('ffn.gate', 'mlp.gate_proj.weight', [f.intermediate, E]);
      add('ffn.up', 'mlp.up_proj.weight', [f.intermediate, E]);
      add('ffn.down', 'mlp.down_proj.weight', [E, f.intermediate]);
    } else if (f.kind === 'linear') {
      add('ffn.weight', 'mlp.linear_mlp.weight', [E, E]);
    }
    return specs;
  });
  return {
    layers,
    embed: { name: 'model.embed_tokens.weight', shape: [config.vocabSize, E] },
    finalNorm: { name: 'model.norm.weight', shape: [E] },
    lmHead: config.tieEmbeddings ? null : { name: 'lm_head.weight', shape: [config.vocabSize, E] },
  };
}

/** Assembles typed layer weights from tensors keyed as in `checkpointTensorSpecs` (e.g. "attention.q"). */
export function layerWeightsFrom(block: BlockConfig, get: (key: string) => Tensor): LayerWeights {
  const a = block.attention;
  const attention: AttentionWeights =
    a.kind === 'gqa'
      ? { kind: 'gqa', norm: get('attention.norm'), q: get('attention.q'), k: get('attention.k'), v: get('attention.v'), o: get('attention.o') }
      : a.kind === 'linear'
        ? { kind: 'linear', norm: get('attention.norm'), weight: get('attention.weight') }
        : { kind: 'noop' };
  const f = block.ffn;
  const ffn: FfnWeights =
    f.kind === 'swiglu'
      ? { kind: 'swiglu', norm: get('ffn.norm'), gate: get('ffn.gate'), up: get('ffn.up'), down: get('ffn.down') }
      : f.kind === 'linear'
        ? { kind: 'linear', norm: get('ffn.norm'), weight: get('ffn.weight') }
        : { kind: 'noop' };
  return { attention, ffn };
}

/** The inverse of the above: each tensor of a layer under its spec key. */
export function layerTensors(layer: LayerWeights): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  const a = layer.attention;
  if (a.kind !== 'noop') out['attention.norm'] = a.norm;
  if (a.kind === 'gqa') Object.assign(out, { 'attention.q': a.q, 'attention.k': a.k, 'attention.v': a.v, 'attention.o': a.o });
  if (a.kind === 'linear') out['attention.weight'] = a.weight;
  const f = layer.ffn;
  if (f.kind !== 'noop') out['ffn.norm'] = f.norm;
  if (f.kind === 'swiglu') Object.assign(out, { 'ffn.gate': f.gate, 'ffn.up': f.up, 'ffn.down': f.down });
  if (f.kind === 'linear') out['ffn.weight'] = f.weight;
  return out;
}
