import type { ModelConfig } from '../arch/config.js';
import type { SubBlock } from '../arch/variant.js';
import type { Tensor } from '../util/tensor.js';
import type { Dim, GraphBuilder } from './graph-builder.js';
import type { LinearPart, VectorPart } from './weight-writer.js';

/**
 * What a variant kind emits its sub-block with: the graph, the model, the layer, the per-sequence tensors
 * every layer shares, the taps it may expose, and its weights as graph values — baked in as initializers in
 * inference graphs, graph inputs (whose gradients the graph returns) in training graphs. The op helpers below
 * (RMSNorm, RoPE) are the vocabulary blocks are written in.
 */
export interface EmitContext {
  readonly g: GraphBuilder;
  readonly config: ModelConfig;
  readonly layer: number;
  readonly subBlock: SubBlock;
  readonly seq: SequenceContext;
  /** Exposes `tensor` as this layer's tap `site` when the graph was asked for it. */
  tap(site: TapSite, tensor: string, dims: readonly Dim[]): void;
  /** A weight of this sub-block used as stored (a norm's scale), under `name` in inference graphs. */
  stored(role: string, t: Tensor, name: string): string;
  /** Weights [out, in] of this sub-block used as one [in, Σout] matrix (transposed, each scaled, side by side): one fused MatMul's right side. */
  transposed(parts: readonly (Omit<LinearPart, 'key'> & { readonly role: string })[], name: string): string;
  /** Vector weights of this sub-block (biases, per-head norms) as one vector: each scaled and repeated, end to end. */
  concatenated(parts: readonly (Omit<VectorPart, 'key'> & { readonly role: string })[], name: string): string;
}

/** Per-sequence tensors every attention layer shares: the causal mask and RoPE's cos/sin tables. */
export interface SequenceContext {
  /** [seq, past + seq]: 0 where a query may attend to a key, -inf elsewhere. */
  readonly mask: string;
  /** [seq, 1, headDim], broadcast over batch and heads. */
  readonly cos: string;
  readonly sin: string;
  /** Scalar int64: seq - 1 (made on first use, so graphs that never pick the last position carry no unused constant). */
  lastIndex(): string;
  /** Whether attention appends to past K/V inputs (incremental decoding). */
  readonly cached: boolean;
  /** In graphs with fused attention, what its kernel takes besides Q/K/V (made on first use); null in standard graphs. */
  readonly fused: (() => FusedAttentionInputs) | null;
}

/** com.microsoft GroupQueryAttention's sequence inputs: int32 [batch] past + new − 1, int32 scalar past + new, RoPE's cos and sin tables [past + new, headDim / 2] (made on first use). */
export interface FusedAttentionInputs {
  readonly seqlensK: string;
  readonly totalLength: string;
  rotaryCaches(): readonly [string, string];
}

/**
 * Tensors a graph can return besides its logits, per layer: the residual stream entering the layer
 * (`residual`; layer = numLayers is after the last), what attention adds, the FFN's input and what it adds,
 * the attention context before o_proj, the SwiGLU activation before down_proj.
 */
export const TAP_SITES = ['residual', 'attention.output', 'ffn.input', 'ffn.output', 'attention.context', 'ffn.activation'] as const;
export type TapSite = (typeof TAP_SITES)[number];

export interface TapPoint {
  readonly layer: number;
  readonly site: TapSite;
}

/** The graph output name of a tap. */
export const tapName = (t: TapPoint) => `${t.site}.${t.layer}`;

/** The tap a graph output name stands for, or null for another output (logits, K/V cache, scores). */
export function parseTapName(name: string): TapPoint | null {
  const dot = name.lastIndexOf('.');
  const site = name.slice(0, dot) as TapSite;
  const layer = Number(name.slice(dot + 1));
  return dot > 0 && TAP_SITES.includes(site) && Number.isInteger(layer) ? { layer, site } : null;
}

/** The four taps around a layer's two sub-blocks. */
export const subBlockTaps = (layer: number): TapPoint[] =>
  (['residual', 'attention.output', 'ffn.input', 'ffn.output'] as const).map((site) => ({ layer, site }));

export const pastKeyName = (i: number) => `past_key.${i}`;
export const pastValueName = (i: number) => `past_value.${i}`;
export const presentKeyName = (i: number) => `present_key.${i}`;
export const presentValueName = (i: number) => `present_value.${i}`;

/**
 * RMSNorm written in the op pattern (Pow → ReduceMean → Add → Sqrt → Div → Mul) that onnxruntime
 * fuses into one SimplifiedLayerNormalization kernel.
 */
export function rmsNorm(g: GraphBuilder, x: string, weight: () => string, eps: number, prefix: string): string {
  const sq = g.node('Pow', [x, g.float(2)], {}, `${prefix}_sq`);
  const mean = g.node('ReduceMean', [sq], { axes: [-1], keepdims: 1 }, `${prefix}_ms`);
  const rms = g.node('Sqrt', [g.node('Add', [mean, g.float(eps)], {}, `${prefix}_ms_eps`)], {}, `${prefix}_rms`);
  const normed = g.node('Div', [x, rms], {}, `${prefix}_unit`);
  return g.node('Mul', [normed, weight()], {}, prefix);
}

/** A sub-block's RMSNorm with its `norm` weight (the weight is made where the graph needs it, keeping initializer order). */
export function normOf(ctx: EmitContext, x: string, weight: Tensor, prefix: string): string {
  return rmsNorm(ctx.g, x, () => ctx.stored('norm', weight, `${prefix}_weight`), ctx.config.rmsNormEps, prefix);
}

/** HuggingFace's rotate-half RoPE on [batch, seq, heads, headDim]. */
export function rope(g: GraphBuilder, x: string, seq: SequenceContext, half: number, prefix: string): string {
  const [x1, x2] = g.nodeN('Split', [x, g.int64([half, half])], 2, { axis: -1 }, `${prefix}_half`);
  const rotated = g.node('Concat', [g.node('Neg', [x2], {}, `${prefix}_neg`), x1], { axis: -1 }, `${prefix}_rot`);
  const a = g.node('Mul', [x, seq.cos], {}, `${prefix}_cos`);
  const b = g.node('Mul', [rotated, seq.sin], {}, `${prefix}_sin`);
  return g.node('Add', [a, b], {}, `${prefix}_roped`);
}
