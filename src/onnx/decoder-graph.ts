import type { ModelConfig } from '../arch/config.js';
import { ropeInverseFrequencies } from '../arch/rope.js';
import { cachedKvHeadsOf, kindOf } from '../arch/variants/registry.js';
import { SUB_BLOCKS, type Architecture } from '../arch/variant.js';
import { sourceOf, type ModelWeights, type WeightSource } from '../model/weights.js';
import { DataType, GraphBuilder } from './graph-builder.js';
import { pastKeyName, pastValueName, rmsNorm, tapName, type EmitContext, type FusedAttentionInputs, type SequenceContext, type TapPoint, type TapSite } from './emit.js';
import { inferenceWeights, type WeightWriter } from './weight-writer.js';

/**
 * What a decoder graph computes. By default: the whole model, token ids in, logits out.
 * `fromLayer > 0` makes a partial graph whose input is the residual stream entering that layer.
 */
/** Whether onnxruntime's CPU GroupQueryAttention kernel runs a model: it refuses head sizes that are not a multiple of 8. */
export const fusedAttentionRuns = (config: ModelConfig): boolean => config.headDim % 8 === 0;

export interface DecoderGraphOptions {
  /** First layer to run; > 0 takes `hidden_in` [batch, seq, hidden] instead of `input_ids`. */
  readonly fromLayer?: number;
  /** One past the last layer to run; below numLayers the graph has no logits. Graphs without logits end in the residual tap at `toLayer`. */
  readonly toLayer?: number;
  /**
   * Logits for every position, only the last one (generation), none, or instead of logits: 'score',
   * per-position `kl` (KL of `reference_logprobs` from this model's distribution) and `nll` of `targets`;
   * 'nll', the `nll` of `targets` alone (perplexity without [batch, seq, vocab] leaving the graph).
   */
  readonly logits?: 'all' | 'last' | 'none' | 'score' | 'nll';
  /** Tensors to return besides the logits (see `TapSite`); a tap a layer does not have (a no-op's output) is left out. */
  readonly taps?: readonly TapPoint[];
  /** Take the residual stream as input even from layer 0 (for timing single sub-blocks). */
  readonly hiddenInput?: boolean;
  /** Fixed [batch, seq] instead of symbolic dimensions: graphs whose every shape must be known (training). */
  readonly shape?: { readonly batch: number; readonly seq: number };
  /**
   * Incremental decoding: each caching layer i takes `past_key.<i>` / `past_value.<i>` [batch, kvHeads, past, headDim]
   * and returns `present_key.<i>` / `present_value.<i>` with the new positions appended; positions start at `past`.
   */
  readonly kvCache?: boolean;
  /**
   * Attention as onnxruntime's fused CPU kernel (com.microsoft GroupQueryAttention: RoPE, the causal or sliding
   * window and grouped heads in one op) instead of standard ops: for graphs that only infer (timing, the exported
   * model.onnx). Training graphs and other runtimes use the standard ops.
   */
  readonly fusedAttention?: boolean;
  /**
   * With kvCache and fusedAttention: each cache is a buffer [batch, kvHeads, capacity, headDim] that onnxruntime
   * writes the new positions into, in place (bind the same tensor as `past_*` and as the preallocated `present_*`),
   * and `past_length` (an int64 scalar) says how many positions it holds — so no cache crosses into JavaScript, or is
   * copied by the kernel, at each decode step.
   */
  readonly kvBuffer?: boolean;
}

export const INPUT_IDS = 'input_ids';
export const HIDDEN_IN = 'hidden_in';
export const LOGITS = 'logits';
export const REFERENCE_LOGPROBS = 'reference_logprobs';
export const TARGETS = 'targets';
export const KL = 'kl';
export const NLL = 'nll';
export const PAST_LENGTH = 'past_length';

/**
 * Builds the ONNX graph of a decoder whose layers may each have their own attention and FFN variant; each
 * sub-block is emitted by its variant kind. Standard opset-17 ops only, float32, batches of equal length;
 * weights baked in as inference initializers.
 */
/**
 * The decoder as an ONNX graph. With `file`, a graph for that path whose weights stream into its external
 * data as each layer is emitted (finish it with `writeTo(file)`): memory holds one layer, not the model;
 * `scratch`: a file only a session is opened from (see GraphBuilder.streamingTo).
 */
export function buildDecoderGraph(config: ModelConfig, weights: ModelWeights | WeightSource, options: DecoderGraphOptions = {}, o: { file?: string; scratch?: boolean } = {}): GraphBuilder {
  const g = o.file === undefined ? new GraphBuilder('tessera_decoder') : GraphBuilder.streamingTo('tessera_decoder', o.file, { scratch: o.scratch });
  const { logits } = emitDecoder(g, config, weights, options, inferenceWeights);
  if (logits !== null) {
    if (options.logits === 'score') scoringHead(g, logits, config.vocabSize);
    else if (options.logits === 'nll') targetNll(g, g.node('LogSoftmax', [logits], { axis: -1 }, 'logprobs'));
    else g.expose(logits, LOGITS, options.logits === 'last' ? ['batch', config.vocabSize] : ['batch', 'seq', config.vocabSize]);
  }
  return g;
}

/** The layers of a graph's range that take and return a K/V cache (none without `kvCache`). */
export function cachedLayersOf(config: ModelConfig, architecture: Architecture, options: Pick<DecoderGraphOptions, 'kvCache' | 'fromLayer' | 'toLayer'>): number[] {
  if (!options.kvCache) return [];
  const from = options.fromLayer ?? 0;
  const to = options.toLayer ?? architecture.length;
  const cachedHeads = cachedKvHeadsOf(config, architecture);
  return architecture.map((_, i) => i).filter((i) => i >= from && i < to && cachedHeads(i) > 0);
}

/**
 * A decoder's body in a graph: embedding (or a residual-stream input), the layers of the range, and the
 * final norm and LM head unless the graph has no logits; weights enter as `writer` makes them. Taps and the
 * residual stream after the last layer (for graphs without logits) are exposed as outputs; the raw logits
 * tensor is returned for the caller to expose or to compare. With `options.shape` every dimension is fixed.
 * Only the weights the range needs are read from the source (its layers; the embedding and head at the ends).
 */
export function emitDecoder(g: GraphBuilder, config: ModelConfig, weights: ModelWeights | WeightSource, options: DecoderGraphOptions, writer: WeightWriter): { logits: string | null; hidden: string } {
  const source = sourceOf(weights);
  const L = source.numLayers;
  const from = options.fromLayer ?? 0;
  const to = options.toLayer ?? L;
  const logits = to === L ? (options.logits ?? 'all') : 'none';
  // An empty range is only useful to go straight from a residual stream to logits (after the last layer).
  if (!(0 <= from && from <= to && to <= L && (from < to || (from === L && logits !== 'none')))) {
    throw new Error(`invalid layer range [${from}, ${to}) for ${L} layers`);
  }
  const E = config.hiddenSize;
  const [batchDim, seqDim] = options.shape ? [options.shape.batch, options.shape.seq] : ['batch', 'seq'];
  let embed: ModelWeights['embed'] | undefined;

  let x: string;
  let shapeSource: string;
  if (from === 0 && !options.hiddenInput) {
    const ids = g.input(INPUT_IDS, DataType.INT32, [batchDim, seqDim]);
    embed = source.embed();
    x = g.node('Gather', [writer.stored(g, 'embed', embed, 'embed_tokens'), ids], { axis: 0 }, 'embedded');
    shapeSource = ids;
  } else {
    x = g.input(HIDDEN_IN, DataType.FLOAT, [batchDim, seqDim, E]);
    shapeSource = x;
  }
  const cachedHeads = cachedKvHeadsOf(config, source.architecture);
  const cached = cachedLayersOf(config, source.architecture, options);
  if (options.kvBuffer && !(options.kvCache && options.fusedAttention)) throw new Error('kvBuffer: K/V buffers are written in place by the fused attention kernel; use them with kvCache and fusedAttention');
  const positionsDim = options.kvBuffer ? 'capacity' : 'past';
  for (const i of cached) {
    g.input(pastKeyName(i), DataType.FLOAT, [batchDim, cachedHeads(i), positionsDim, config.headDim]);
    g.input(pastValueName(i), DataType.FLOAT, [batchDim, cachedHeads(i), positionsDim, config.headDim]);
  }
  const past: PastSource | null = cached.length === 0 ? null : options.kvBuffer ? { length: g.input(PAST_LENGTH, DataType.INT64, []) } : { cache: pastKeyName(cached[0]) };
  const seq = options.shape ? fixedSequenceContext(g, config, options.shape.seq) : sequenceContext(g, config, shapeSource, past, options.fusedAttention ?? false);

  const wanted = new Set((options.taps ?? []).map(tapName));
  const act = [batchDim, seqDim, E];
  for (let i = from; i < to; i++) {
    const tap = (site: TapSite, tensor: string, dims: readonly (string | number)[]) => {
      const name = tapName({ layer: i, site });
      if (wanted.has(name)) g.expose(tensor, name, dims);
    };
    tap('residual', x, act);
    // One layer read at a time: once its weights are laid out in the graph, the source's copy can go.
    const layer = source.layer(i);
    for (const sub of SUB_BLOCKS) {
      const w = layer[sub];
      const key = (role: string) => `${i}.${sub}.${role}`;
      const ctx: EmitContext = {
        g,
        config,
        layer: i,
        subBlock: sub,
        seq,
        tap,
        stored: (role, t, name) => writer.stored(g, key(role), t, name),
        transposed: (parts, name) => writer.transposed(g, parts.map((p) => ({ key: key(p.role), tensor: p.tensor, scale: p.scale })), name),
        concatenated: (parts, name) => writer.concatenated(g, parts.map((p) => ({ key: key(p.role), tensor: p.tensor, scale: p.scale, repeat: p.repeat })), name),
      };
      const out = kindOf(sub, w.variant).emit(ctx, w, x);
      if (out !== null) {
        tap(`${sub}.output`, out, act);
        x = g.node('Add', [x, out], {}, sub === 'attention' ? `h${i}_mid` : `h${i + 1}`);
      }
      if (sub === 'attention') tap('ffn.input', x, act);
    }
  }
  const end = tapName({ layer: to, site: 'residual' });
  if (wanted.has(end)) g.expose(x, end, act);
  if (logits === 'none') {
    // A graph without logits ends in the residual stream after its last layer.
    if (!wanted.has(end)) g.expose(x, end, act);
    return { logits: null, hidden: x };
  }
  let h = rmsNorm(g, x, () => writer.stored(g, 'final_norm', source.finalNorm(), 'final_norm_weight'), config.rmsNormEps, 'final_norm');
  if (logits === 'last') h = g.node('Gather', [h, seq.lastIndex()], { axis: 1 }, 'last_hidden');
  // A tied head is the embedding itself, one weight with one gradient.
  const head = source.tiedHead ? { key: 'embed', tensor: embed ?? source.embed() } : { key: 'lm_head', tensor: source.lmHead() };
  return { logits: writer.product(g, h, head, 'logits_raw'), hidden: x };
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
  targetNll(g, lp, targets);
}

/** The `nll` output: −log p of each position's target id (input `targets` [batch, seq]) under log-probabilities `lp`. */
function targetNll(g: GraphBuilder, lp: string, targets = g.input(TARGETS, DataType.INT32, ['batch', 'seq'])): void {
  const picked = g.node('GatherElements', [lp, g.node('Unsqueeze', [targets, g.int64([-1])], {}, 'targets_col')], { axis: -1 }, 'target_lp');
  g.expose(g.node('Neg', [g.node('Squeeze', [picked, g.int64([-1])], {}, 'target_lp_flat')], {}, 'nll_raw'), NLL, ['batch', 'seq']);
}

/** Where the positions already cached are counted: a cache's length, or an input that says it (K/V buffers). */
type PastSource = { readonly cache: string } | { readonly length: string };

function sequenceContext(g: GraphBuilder, config: ModelConfig, shapeSource: string, pastSource: PastSource | null, fusedAttention: boolean): SequenceContext {
  const shape = g.node('Shape', [shapeSource], {}, 'input_shape');
  const seq = g.node('Gather', [shape, g.int64([1], true)], { axis: 0 }, 'seq_len');
  const past = pastSource === null ? g.int64([0], true) : 'length' in pastSource ? pastSource.length : g.node('Gather', [g.node('Shape', [pastSource.cache], {}, 'past_shape'), g.int64([2], true)], { axis: 0 }, 'past_len');
  const total = g.node('Add', [past, seq], {}, 'total_len');
  const positions = once(() => g.node('Range', [past, total, g.int64([1], true)], {}, 'positions'));
  // Every position a query may see, [0, past + new): the new positions themselves when there is no past.
  const keyPositions = once(() => (pastSource === null ? positions() : g.node('Range', [g.int64([0], true), total, g.int64([1], true)], {}, 'key_positions')));
  const invFreq = once(() => g.initializer('rope_inv_freq', ropeInverseFrequencies(config), [1, config.headDim / 2]));
  /** RoPE's angles [n, headDim / 2] of int64 positions [n]: float32 position × float32 frequency. */
  const anglesAt = (at: string, prefix: string) =>
    g.node('MatMul', [g.node('Unsqueeze', [g.node('Cast', [at], { to: DataType.FLOAT }, `${prefix}_f`), g.int64([1])], {}, `${prefix}_col`), invFreq()], {}, `${prefix}_freqs`);

  const mask = once(() => {
    const rows = g.node('Unsqueeze', [positions(), g.int64([1])], {}, 'query_pos');
    const cols = g.node('Unsqueeze', [keyPositions(), g.int64([0])], {}, 'key_pos');
    let blocked = g.node('Greater', [cols, rows], {}, 'future');
    if (config.slidingWindow !== null) {
      const distance = g.node('Sub', [rows, cols], {}, 'distance');
      const tooFar = g.node('GreaterOrEqual', [distance, g.int64([config.slidingWindow], true)], {}, 'beyond_window');
      blocked = g.node('Or', [blocked, tooFar], {}, 'blocked');
    }
    return g.node('Where', [blocked, g.float(-Infinity), g.float(0)], {}, 'attn_mask');
  });
  const rope = once(() => {
    const freqs = anglesAt(positions(), 'pos');
    const angles = g.node('Concat', [freqs, freqs], { axis: -1 }, 'rope_angles');
    return {
      cos: g.node('Unsqueeze', [g.node('Cos', [angles], {}, 'cos_t'), g.int64([1])], {}, 'rope_cos'),
      sin: g.node('Unsqueeze', [g.node('Sin', [angles], {}, 'sin_t'), g.int64([1])], {}, 'rope_sin'),
    };
  });
  const fused = once((): FusedAttentionInputs => {
    const totalLength = g.node('Cast', [total], { to: DataType.INT32 }, 'total_len_i32');
    const batch = g.node('Gather', [shape, g.int64([0])], { axis: 0 }, 'batch_size');
    const lastKey = g.node('Sub', [total, g.int64([1], true)], {}, 'last_key');
    const seqlensK = g.node('Cast', [g.node('Expand', [lastKey, batch], {}, 'last_keys')], { to: DataType.INT32 }, 'seqlens_k');
    // The kernel's RoPE tables for positions [0, past + new), computed per call as the standard graph computes its
    // angles: a table of every position the model allows would be 33 MB in each stage's session at a 128k context.
    const rotaryCaches = once((): [string, string] => {
      const angles = anglesAt(keyPositions(), 'key_pos');
      return [g.node('Cos', [angles], {}, 'rope_cos_cache'), g.node('Sin', [angles], {}, 'rope_sin_cache')];
    });
    return { seqlensK, totalLength, rotaryCaches };
  });
  return {
    get mask() {
      return mask();
    },
    get cos() {
      return rope().cos;
    },
    get sin() {
      return rope().sin;
    },
    lastIndex: once(() => g.node('Sub', [seq, g.int64([1], true)], {}, 'last_index')),
    cached: pastSource !== null,
    fused: fusedAttention ? fused : null,
  };
}

/** Made on first use, then the same: graphs carry only the sequence tensors their layers use. */
function once<T>(make: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= make());
}

/**
 * The same tensors for a fixed sequence length, as constants: a graph whose every shape is known (training)
 * needs no shape arithmetic, and its mask and RoPE tables are data, not something to differentiate.
 */
function fixedSequenceContext(g: GraphBuilder, config: ModelConfig, seq: number): SequenceContext {
  const D = config.headDim;
  const window = config.slidingWindow ?? Infinity;
  const maskData = new Float32Array(seq * seq);
  for (let q = 0; q < seq; q++) for (let k = 0; k < seq; k++) if (k > q || q - k >= window) maskData[q * seq + k] = -Infinity;
  const invFreq = ropeInverseFrequencies(config);
  const cosData = new Float32Array(seq * D);
  const sinData = new Float32Array(seq * D);
  for (let t = 0; t < seq; t++) {
    for (let i = 0; i < D; i++) {
      // As the dynamic graph computes them: float32 position × float32 frequency, then cos/sin in float32.
      const angle = Math.fround(t * invFreq[i % (D / 2)]);
      cosData[t * D + i] = Math.cos(angle);
      sinData[t * D + i] = Math.sin(angle);
    }
  }
  // Made on first use: a graph of one FFN (local training) needs no mask and no RoPE tables.
  const [mask, cos, sin, lastIndex] = [
    once(() => g.initializer('attn_mask', maskData, [seq, seq])),
    once(() => g.initializer('rope_cos', cosData, [seq, 1, D])),
    once(() => g.initializer('rope_sin', sinData, [seq, 1, D])),
    once(() => g.int64([seq - 1], true)),
  ];
  return {
    get mask() {
      return mask();
    },
    get cos() {
      return cos();
    },
    get sin() {
      return sin();
    },
    lastIndex,
    cached: false,
    fused: null,
  };
}
