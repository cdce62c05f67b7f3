import type { ModelConfig } from '../arch/config.js';
import { ropeInverseFrequencies } from '../arch/rope.js';
import type { AttentionWeights, FfnWeights, ModelWeights } from '../model/weights.js';
import type { Tensor } from '../util/tensor.js';
import { DataType, GraphBuilder } from './graph-builder.js';
import { transposeConcat } from './layout.js';

/**
 * What a decoder graph computes. By default: the whole model, token ids in, logits out.
 * `fromLayer > 0` makes a partial graph whose input is the residual stream entering that layer.
 */
export interface DecoderGraphOptions {
  /** First layer to run; > 0 takes `hidden_in` [batch, seq, hidden] instead of `input_ids`. */
  readonly fromLayer?: number;
  /** One past the last layer to run; below numLayers the graph has no logits. Graphs without logits end at `hidden.<toLayer>`. */
  readonly toLayer?: number;
  /**
   * Logits for every position, only the last one (generation), none, or 'score': instead of logits,
   * per-position `kl` (KL of `reference_logprobs` from this model's distribution) and `nll` of `targets`.
   */
  readonly logits?: 'all' | 'last' | 'none' | 'score';
  /** Residual-stream boundaries to output as `hidden.<i>` (the stream entering layer i; i = numLayers is after the last). */
  readonly hiddenAt?: readonly number[];
  /** Layers whose sub-block activations to output: `hidden.<i>`, `mid.<i>` (the FFN's input), `attn_out.<i>`, `ffn_out.<i>`. */
  readonly subBlocksOf?: readonly number[];
  /** Layers whose attention context (heads merged, before o_proj) to output as `attn_ctx.<i>` [batch, seq, heads·headDim]. */
  readonly attentionContextOf?: readonly number[];
  /** Layers whose SwiGLU activations silu(gate)·up to output as `ffn_act.<i>` [batch, seq, intermediate]. */
  readonly ffnActivationOf?: readonly number[];
  /** Take the residual stream as input even from layer 0 (for timing single sub-blocks). */
  readonly hiddenInput?: boolean;
  /**
   * Incremental decoding: each GQA layer i takes `past_key.<i>` / `past_value.<i>` [batch, kvHeads, past, headDim]
   * and returns `present_key.<i>` / `present_value.<i>` with the new positions appended; positions start at `past`.
   */
  readonly kvCache?: boolean;
}

export const INPUT_IDS = 'input_ids';
export const HIDDEN_IN = 'hidden_in';
export const LOGITS = 'logits';
export const REFERENCE_LOGPROBS = 'reference_logprobs';
export const TARGETS = 'targets';
export const KL = 'kl';
export const NLL = 'nll';
export const attnCtxName = (i: number) => `attn_ctx.${i}`;
export const ffnActName = (i: number) => `ffn_act.${i}`;
export const hiddenName = (i: number) => `hidden.${i}`;
export const midName = (i: number) => `mid.${i}`;
export const attnOutName = (i: number) => `attn_out.${i}`;
export const ffnOutName = (i: number) => `ffn_out.${i}`;
export const pastKeyName = (i: number) => `past_key.${i}`;
export const pastValueName = (i: number) => `past_value.${i}`;
export const presentKeyName = (i: number) => `present_key.${i}`;
export const presentValueName = (i: number) => `present_value.${i}`;

/**
 * Builds the ONNX graph of a decoder whose layers may each have their own attention and FFN variant
 * (the variant is read off the weights). Standard opset-17 ops only, float32, batches of equal length.
 */
export function buildDecoderGraph(config: ModelConfig, weights: ModelWeights, options: DecoderGraphOptions = {}): GraphBuilder {
  const L = weights.layers.length;
  const from = options.fromLayer ?? 0;
  const to = options.toLayer ?? L;
  const logits = to === L ? (options.logits ?? 'all') : 'none';
  // An empty range is only useful to go straight from a residual stream to logits (after the last layer).
  if (!(0 <= from && from <= to && to <= L && (from < to || (from === L && logits !== 'none')))) {
    throw new Error(`invalid layer range [${from}, ${to}) for ${L} layers`);
  }
  const E = config.hiddenSize;
  const g = new GraphBuilder('tessera_decoder');

  let x: string;
  let shapeSource: string;
  if (from === 0 && !options.hiddenInput) {
    const ids = g.input(INPUT_IDS, DataType.INT32, ['batch', 'seq']);
    x = g.node('Gather', [g.initializer('embed_tokens', weights.embed.data, weights.embed.shape), ids], { axis: 0 }, 'embedded');
    shapeSource = ids;
  } else {
    x = g.input(HIDDEN_IN, DataType.FLOAT, ['batch', 'seq', E]);
    shapeSource = x;
  }
  const cached = options.kvCache ? weights.layers.map((l, i) => (i >= from && i < to && l.attention.kind === 'gqa' ? i : -1)).filter((i) => i >= 0) : [];
  const pastSource = cached.length > 0 ? declarePastInputs(g, config, weights, cached) : null;
  const ctx = sequenceContext(g, config, shapeSource, pastSource);

  const wantHidden = new Set(options.hiddenAt ?? []);
  const wantSub = new Set(options.subBlocksOf ?? []);
  const act = ['batch', 'seq', E];
  for (let i = from; i < to; i++) {
    if (wantHidden.has(i) || wantSub.has(i)) g.expose(x, hiddenName(i), act);
    const layer = weights.layers[i];
    const attnOut = attentionBlock(g, config, layer.attention, x, ctx, i, options.attentionContextOf?.includes(i) ?? false);
    if (attnOut !== null) {
      if (wantSub.has(i)) g.expose(attnOut, attnOutName(i), act);
      x = g.node('Add', [x, attnOut], {}, `h${i}_mid`);
    }
    if (wantSub.has(i)) g.expose(x, midName(i), act);
    const ffnOut = ffnBlock(g, config, layer.ffn, x, i, options.ffnActivationOf?.includes(i) ?? false);
    if (ffnOut !== null) {
      if (wantSub.has(i)) g.expose(ffnOut, ffnOutName(i), act);
      x = g.node('Add', [x, ffnOut], {}, `h${i + 1}`);
    }
  }
  if (wantHidden.has(to)) g.expose(x, hiddenName(to), act);

  if (logits !== 'none') {
    let h = rmsNorm(g, x, weights.finalNorm, config.rmsNormEps, 'final_norm');
    if (logits === 'last') h = g.node('Gather', [h, ctx.lastIndex], { axis: 1 }, 'last_hidden');
    const head = g.initializer('lm_head_t', transposeConcat([weights.lmHead]), [E, config.vocabSize]);
    const out = g.node('MatMul', [h, head], {}, 'logits_raw');
    if (logits === 'score') scoringHead(g, out, config.vocabSize);
    else g.expose(out, LOGITS, logits === 'last' ? ['batch', config.vocabSize] : ['batch', 'seq', config.vocabSize]);
  }
  // A graph without logits ends in the residual stream after its last layer.
  if (logits === 'none' && !wantHidden.has(to)) g.expose(x, hiddenName(to), act);
  return g;
}

/** Declares the past K/V inputs of the cached layers; returns one of them, whose dim 2 is the past length. */
function declarePastInputs(g: GraphBuilder, config: ModelConfig, weights: ModelWeights, layers: readonly number[]): string {
  for (const i of layers) {
    const a = weights.layers[i].attention;
    const K = a.kind === 'gqa' ? a.k.shape[0] / config.headDim : 0;
    g.input(pastKeyName(i), DataType.FLOAT, ['batch', K, 'past', config.headDim]);
    g.input(pastValueName(i), DataType.FLOAT, ['batch', K, 'past', config.headDim]);
  }
  return pastKeyName(layers[0]);
}

/**
 * Distribution-level comparison inside the graph, so that scoring never moves [batch, seq, vocab] logits
 * into JavaScript: KL(reference ‖ model) and the NLL of the targets, per position.
 */
function scoringHead(g: GraphBuilder, logits: string, vocab: number): void {
  const reference = g.input(REFERENCE_LOGPROBS, DataType.FLOAT, ['batch', 'seq', vocab]);
  const targets = g.input(TARGETS, DataType.INT32, ['batch', 'seq']);
  const lp = g.node('LogSoftmax', [logits], { axis: -1 }, 'logprobs');
  const pointwise = g.node('Mul', [g.node('Exp', [reference], {}, 'ref_probs'), g.node('Sub', [reference, lp], {}, 'log_ratio')], {}, 'kl_terms');
  g.expose(g.node('ReduceSum', [pointwise, g.int64([-1])], { keepdims: 0 }, 'kl_raw'), KL, ['batch', 'seq']);
  const picked = g.node('GatherElements', [lp, g.node('Unsqueeze', [targets, g.int64([-1])], {}, 'targets_col')], { axis: -1 }, 'target_lp');
  g.expose(g.node('Neg', [g.node('Squeeze', [picked, g.int64([-1])], {}, 'target_lp_flat')], {}, 'nll_raw'), NLL, ['batch', 'seq']);
}

/** Per-sequence tensors every attention layer shares: the causal mask and RoPE's cos/sin tables. */
interface SequenceContext {
  /** [seq, past + seq]: 0 where a query may attend to a key, -inf elsewhere. */
  readonly mask: string;
  /** [seq, 1, headDim], broadcast over batch and heads. */
  readonly cos: string;
  readonly sin: string;
  /** Scalar int64: seq - 1. */
  readonly lastIndex: string;
  /** Whether attention appends to past K/V inputs. */
  readonly cached: boolean;
}

function sequenceContext(g: GraphBuilder, config: ModelConfig, shapeSource: string, pastSource: string | null): SequenceContext {
  const shape = g.node('Shape', [shapeSource], {}, 'input_shape');
  const seq = g.node('Gather', [shape, g.int64([1], true)], { axis: 0 }, 'seq_len');
  const lastIndex = g.node('Sub', [seq, g.int64([1], true)], {}, 'last_index');
  const past = pastSource === null ? g.int64([0], true) : g.node('Gather', [g.node('Shape', [pastSource], {}, 'past_shape'), g.int64([2], true)], { axis: 0 }, 'past_len');
  const total = g.node('Add', [past, seq], {}, 'total_len');
  const positions = g.node('Range', [past, total, g.int64([1], true)], {}, 'positions');
  const keyPositions = pastSource === null ? positions : g.node('Range', [g.int64([0], true), total, g.int64([1], true)], {}, 'key_positions');

  const rows = g.node('Unsqueeze', [positions, g.int64([1])], {}, 'query_pos');
  const cols = g.node('Unsqueeze', [keyPositions, g.int64([0])], {}, 'key_pos');
  let blocked = g.node('Greater', [cols, rows], {}, 'future');
  if (config.slidingWindow !== null) {
    const distance = g.node('Sub', [rows, cols], {}, 'distance');
    const tooFar = g.node('GreaterOrEqual', [distance, g.int64([config.slidingWindow], true)], {}, 'beyond_window');
    blocked = g.node('Or', [blocked, tooFar], {}, 'blocked');
  }
  const mask = g.node('Where', [blocked, g.float(-Infinity), g.float(0)], {}, 'attn_mask');

  const invFreq = g.initializer('rope_inv_freq', ropeInverseFrequencies(config), [1, config.headDim / 2]);
  const posF = g.node('Unsqueeze', [g.node('Cast', [positions], { to: DataType.FLOAT }, 'pos_f'), g.int64([1])], {}, 'pos_col');
  const freqs = g.node('MatMul', [posF, invFreq], {}, 'rope_freqs');
  const angles = g.node('Concat', [freqs, freqs], { axis: -1 }, 'rope_angles');
  const cos = g.node('Unsqueeze', [g.node('Cos', [angles], {}, 'cos_t'), g.int64([1])], {}, 'rope_cos');
  const sin = g.node('Unsqueeze', [g.node('Sin', [angles], {}, 'sin_t'), g.int64([1])], {}, 'rope_sin');
  return { mask, cos, sin, lastIndex, cached: pastSource !== null };
}

/**
 * RMSNorm written in the op pattern (Pow → ReduceMean → Add → Sqrt → Div → Mul) that onnxruntime
 * fuses into one SimplifiedLayerNormalization kernel.
 */
function rmsNorm(g: GraphBuilder, x: string, weight: Tensor, eps: number, prefix: string): string {
  const sq = g.node('Pow', [x, g.float(2)], {}, `${prefix}_sq`);
  const mean = g.node('ReduceMean', [sq], { axes: [-1], keepdims: 1 }, `${prefix}_ms`);
  const rms = g.node('Sqrt', [g.node('Add', [mean, g.float(eps)], {}, `${prefix}_ms_eps`)], {}, `${prefix}_rms`);
  const normed = g.node('Div', [x, rms], {}, `${prefix}_unit`);
  return g.node('Mul', [normed, g.initializer(`${prefix}_weight`, weight.data, weight.shape)], {}, prefix);
}

/** HuggingFace's rotate-half RoPE on [batch, seq, heads, headDim]. */
function rope(g: GraphBuilder, x: string, ctx: SequenceContext, half: number, prefix: string): string {
  const [x1, x2] = g.nodeN('Split', [x, g.int64([half, half])], 2, { axis: -1 }, `${prefix}_half`);
  const rotated = g.node('Concat', [g.node('Neg', [x2], {}, `${prefix}_neg`), x1], { axis: -1 }, `${prefix}_rot`);
  const a = g.node('Mul', [x, ctx.cos], {}, `${prefix}_cos`);
  const b = g.node('Mul', [rotated, ctx.sin], {}, `${prefix}_sin`);
  return g.node('Add', [a, b], {}, `${prefix}_roped`);
}

function attentionBlock(g: GraphBuilder, config: ModelConfig, w: AttentionWeights, x: string, ctx: SequenceContext, i: number, exposeContext: boolean): string | null {
  if (w.kind === 'noop') return null;
  const p = `l${i}_attn`;
  const n = rmsNorm(g, x, w.norm, config.rmsNormEps, `${p}_norm`);
  const E = config.hiddenSize;
  if (w.kind === 'linear') {
    return g.node('MatMul', [n, g.initializer(`${p}_linear_t`, transposeConcat([w.weight]), [E, E])], {}, `${p}_out`);
  }
  const H = config.numHeads;
  const D = config.headDim;
  const K = w.k.shape[0] / D;
  const group = H / K;
  // Softmax's 1/sqrt(D) is folded into W_q: RoPE is linear, so scaling before or after it is the same.
  const qkvT = transposeConcat([w.q, w.k, w.v], [1 / Math.sqrt(D), 1, 1]);
  const qkv = g.node('MatMul', [n, g.initializer(`${p}_qkv_t`, qkvT, [E, (H + 2 * K) * D])], {}, `${p}_qkv`);
  const [qk, v] = g.nodeN('Split', [qkv, g.int64([(H + K) * D, K * D])], 2, { axis: -1 }, `${p}_qk_v`);
  const qkHeads = rope(g, g.node('Reshape', [qk, g.int64([0, 0, H + K, D])], {}, `${p}_qk_heads`), ctx, D / 2, `${p}_qk`);
  const [q, k] = g.nodeN('Split', [qkHeads, g.int64([H, K])], 2, { axis: 2 }, `${p}_q_k`);
  // K/V as [B, K, S, D] (the cache layout), extended by the past when decoding incrementally.
  let keys = g.node('Transpose', [k], { perm: [0, 2, 1, 3] }, `${p}_k_bktd`);
  let values = g.node('Transpose', [g.node('Reshape', [v, g.int64([0, 0, K, D])], {}, `${p}_v_heads`)], { perm: [0, 2, 1, 3] }, `${p}_v_bktd`);
  if (ctx.cached) {
    keys = g.node('Concat', [pastKeyName(i), keys], { axis: 2 }, `${p}_keys`);
    values = g.node('Concat', [pastValueName(i), values], { axis: 2 }, `${p}_values`);
    g.expose(keys, presentKeyName(i), ['batch', K, 'total', D]);
    g.expose(values, presentValueName(i), ['batch', K, 'total', D]);
  }
  // Grouped heads without copying K/V: queries as [B, K, group, T, D] broadcast against keys [B, K, 1, D, S].
  const q5 = g.node('Transpose', [g.node('Reshape', [q, g.int64([0, 0, K, group, D])], {}, `${p}_q5`)], { perm: [0, 2, 3, 1, 4] }, `${p}_q_bkgtd`);
  const kT = g.node('Transpose', [g.node('Unsqueeze', [keys, g.int64([2])], {}, `${p}_k5`)], { perm: [0, 1, 2, 4, 3] }, `${p}_k_bk1ds`);
  const v5 = g.node('Unsqueeze', [values, g.int64([2])], {}, `${p}_v_bk1sd`);
  const scores = g.node('Add', [g.node('MatMul', [q5, kT], {}, `${p}_qk_scores`), ctx.mask], {}, `${p}_scores`);
  const probs = g.node('Softmax', [scores], { axis: -1 }, `${p}_probs`);
  const ctxHeads = g.node('MatMul', [probs, v5], {}, `${p}_ctx`);
  const merged = g.node('Reshape', [g.node('Transpose', [ctxHeads], { perm: [0, 3, 1, 2, 4] }, `${p}_ctx_btkgd`), g.int64([0, 0, H * D])], {}, `${p}_merged`);
  if (exposeContext) g.expose(merged, attnCtxName(i), ['batch', 'seq', H * D]);
  return g.node('MatMul', [merged, g.initializer(`${p}_o_t`, transposeConcat([w.o]), [H * D, E])], {}, `${p}_out`);
}

function ffnBlock(g: GraphBuilder, config: ModelConfig, w: FfnWeights, x: string, i: number, exposeActivation: boolean): string | null {
  if (w.kind === 'noop') return null;
  const p = `l${i}_ffn`;
  const E = config.hiddenSize;
  const n = rmsNorm(g, x, w.norm, config.rmsNormEps, `${p}_norm`);
  if (w.kind === 'linear') {
    return g.node('MatMul', [n, g.initializer(`${p}_linear_t`, transposeConcat([w.weight]), [E, E])], {}, `${p}_out`);
  }
  const M = w.gate.shape[0];
  const gateUp = g.node('MatMul', [n, g.initializer(`${p}_gate_up_t`, transposeConcat([w.gate, w.up]), [E, 2 * M])], {}, `${p}_gate_up`);
  const [gate, up] = g.nodeN('Split', [gateUp, g.int64([M, M])], 2, { axis: -1 }, `${p}_gu`);
  const silu = g.node('Mul', [gate, g.node('Sigmoid', [gate], {}, `${p}_sig`)], {}, `${p}_silu`);
  const hidden = g.node('Mul', [silu, up], {}, `${p}_act`);
  if (exposeActivation) g.expose(hidden, ffnActName(i), ['batch', 'seq', M]);
  return g.node('MatMul', [hidden, g.initializer(`${p}_down_t`, transposeConcat([w.down]), [M, E])], {}, `${p}_out`);
}
