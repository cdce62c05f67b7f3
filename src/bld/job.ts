import type { ModelConfig } from '../arch/config.js';
import { attentionParams, ffnParams } from '../arch/params.js';
import { attentionKey, ffnKey, type AttentionVariant, type FfnVariant, type SubBlock } from '../arch/types.js';
import type { AttentionWeights, FfnWeights, LayerWeights, ModelWeights } from '../model/weights.js';
import { layerTensors } from '../model/weights.js';
import type { Matrix, MatrixOps } from '../onnx/matmul.js';
import { DecoderSession } from '../onnx/session.js';
import type { Tensor } from '../util/tensor.js';
import { windowBatches } from '../data/sequences.js';
import { compareToReference } from '../eval/kl.js';
import type { ActivationSet, ValidationSet } from './activations.js';
import { fitLinear, nmse, rmsNormRows, selectColumns } from './fit.js';
import { channelImportance, linearAttentionInit, meanPoolKvHeads, sliceChannels, topChannels, type ChannelRanking } from './init.js';

/** One unit of library work: a candidate for one sub-block of one layer. */
export type JobSpec =
  | { readonly layer: number; readonly subBlock: 'attention'; readonly variant: AttentionVariant }
  | { readonly layer: number; readonly subBlock: 'ffn'; readonly variant: FfnVariant };

export const jobKey = (j: JobSpec) => `${j.layer}.${j.subBlock === 'attention' ? attentionKey(j.variant as AttentionVariant) : ffnKey(j.variant as FfnVariant)}`;

/** A candidate's scores. Deterministic: the same inputs give the same numbers bit for bit. */
export interface CandidateScore {
  readonly layer: number;
  readonly subBlock: SubBlock;
  readonly key: string;
  readonly variant: AttentionVariant | FfnVariant;
  readonly params: number;
  /** Whether refit weights replaced the initialisation (the parent's own sub-block and no-ops need no fit). */
  readonly fitted: boolean;
  /** The relative ridge strength chosen on held-out calibration rows; null when the initialisation was kept. */
  readonly ridge: number | null;
  /** Local validation NMSE of the sub-block output, from the initialisation and after fitting. */
  readonly nmseInit: number;
  readonly nmse: number;
  /** Mean KL(parent ‖ parent-with-this-candidate) per validation token, and the LM loss with it. */
  readonly kl: number;
  readonly lmLoss: number;
  readonly lmLossDelta: number;
}

export interface JobContext {
  readonly config: ModelConfig;
  readonly parent: ModelWeights;
  readonly calibration: ActivationSet;
  readonly validation: ValidationSet;
  readonly ops: MatrixOps;
  readonly threads: number;
  readonly ranking: ChannelRanking;
  readonly ridgeGrid: readonly number[];
  /** Sessions worth keeping between jobs of one layer (parent suffix graphs, parent FFN activations). */
  readonly cache: Map<string, unknown>;
}

const noop = { kind: 'noop' } as const;

/** Runs one layer (given explicitly) over every window of a set, from a residual-stream input; returns the requested outputs. */
async function runLayer(ctx: JobContext, layer: LayerWeights, input: Float32Array, set: ActivationSet, want: { attnOut?: boolean; ffnOut?: boolean; hiddenOut?: boolean; context?: boolean; activation?: boolean }) {
  const E = ctx.config.hiddenSize;
  const config = { ...ctx.config, numLayers: 1 };
  const session = await DecoderSession.create(config, { ...ctx.parent, layers: [layer] }, {
    hiddenInput: true,
    logits: 'none',
    subBlocksOf: want.attnOut || want.ffnOut ? [0] : [],
    attentionContextOf: want.context ? [0] : [],
    ffnActivationOf: want.activation ? [0] : [],
  }, { threads: ctx.threads });
  const tokens = set.windows * set.seqLen;
  const out: Record<string, Float32Array> = {};
  const collect = (name: string, t: Tensor | undefined, offset: number) => {
    if (t === undefined) return;
    const width = t.data.length / (t.shape[0] * t.shape[1]);
    (out[name] ??= new Float32Array(tokens * width)).set(t.data, offset * width);
  };
  try {
    for (const { batch, from: offset, to } of windowBatches(set.windows, set.seqLen, 2048)) {
      const x = input.slice(offset * E, to * E);
      const r = await session.run({ data: x, shape: [batch, set.seqLen, E] });
      const s = r.subBlocks.get(0);
      if (want.attnOut) collect('attnOut', s?.attentionOutput, offset);
      if (want.ffnOut) collect('ffnOut', s?.ffnOutput, offset);
      if (want.hiddenOut) collect('hiddenOut', r.hidden.get(1), offset);
      if (want.context) collect('context', r.attentionContext.get(0), offset);
      if (want.activation) collect('activation', r.ffnActivation.get(0), offset);
    }
  } finally {
    await session.release();
  }
  return out;
}

const matrix = (data: Float32Array, cols: number): Matrix => ({ data, rows: data.length / cols, cols });

/** Local NMSE of an attention sub-block on a set (no-op predicts zeros: NMSE 1). */
async function attentionNmse(ctx: JobContext, w: AttentionWeights, layer: number, set: ActivationSet): Promise<number> {
  if (w.kind === 'noop') return 1;
  const { attnOut } = await runLayer(ctx, { attention: w, ffn: noop }, set.layers[layer].attnIn, set, { attnOut: true });
  return nmse(attnOut, set.layers[layer].attnOut);
}

async function ffnNmse(ctx: JobContext, w: FfnWeights, layer: number, set: ActivationSet): Promise<number> {
  if (w.kind === 'noop') return 1;
  const { ffnOut } = await runLayer(ctx, { attention: noop, ffn: w }, set.layers[layer].ffnIn, set, { ffnOut: true });
  return nmse(ffnOut, set.layers[layer].ffnOut);
}

/** A candidate's initial and fitted weights. */
interface Built<W> {
  readonly init: W;
  readonly fitted: W;
  /** The ridge strength of the refit; null when the held-out rows kept the initialisation; undefined when no fit applies. */
  readonly ridge: number | null | undefined;
}

/** Initial and fitted weights of an attention candidate. */
async function buildAttention(ctx: JobContext, layer: number, v: AttentionVariant): Promise<Built<AttentionWeights>> {
  const parent = ctx.parent.layers[layer].attention;
  if (parent.kind !== 'gqa') throw new Error(`layer ${layer} of the parent has no GQA attention to derive candidates from`);
  const cal = ctx.calibration.layers[layer];
  const E = ctx.config.hiddenSize;
  if (v.kind === 'noop') return { init: noop, fitted: noop, ridge: undefined };
  if (v.kind === 'gqa' && v.kvHeads === parent.k.shape[0] / ctx.config.headDim) return { init: parent, fitted: parent, ridge: undefined };
  if (v.kind === 'gqa') {
    const init = meanPoolKvHeads(ctx.config, parent, v.kvHeads);
    // Refit o_proj on the pooled heads' context: the exact least-squares optimum for that matrix.
    const { context } = await runLayer(ctx, { attention: init, ffn: noop }, cal.attnIn, ctx.calibration, { context: true });
    const hd = ctx.config.numHeads * ctx.config.headDim;
    const fit = await fitLinear(ctx.ops, matrix(context, hd), matrix(cal.attnOut, E), init.o, ctx.ridgeGrid);
    return { init, fitted: { ...init, o: fit.weight }, ridge: fit.ridge };
  }
  const init = { kind: 'linear', norm: parent.norm, weight: linearAttentionInit(ctx.config, parent) } as const;
  const normed = rmsNormRows(cal.attnIn, parent.norm.data, ctx.config.rmsNormEps);
  const fit = await fitLinear(ctx.ops, matrix(normed, E), matrix(cal.attnOut, E), init.weight, ctx.ridgeGrid);
  return { init, fitted: { ...init, weight: fit.weight }, ridge: fit.ridge };
}

/** Initial and fitted weights of an FFN candidate. */
async function buildFfn(ctx: JobContext, layer: number, v: FfnVariant): Promise<Built<FfnWeights>> {
  const parent = ctx.parent.layers[layer].ffn;
  if (parent.kind !== 'swiglu') throw new Error(`layer ${layer} of the parent has no SwiGLU FFN to derive candidates from`);
  const cal = ctx.calibration.layers[layer];
  const E = ctx.config.hiddenSize;
  if (v.kind === 'noop') return { init: noop, fitted: noop, ridge: undefined };
  if (v.kind === 'swiglu' && v.intermediate === parent.gate.shape[0]) return { init: parent, fitted: parent, ridge: undefined };
  if (v.kind === 'swiglu') {
    const M = parent.gate.shape[0];
    const key = `ffn-activations.${layer}`;
    let act = ctx.cache.get(key) as Float32Array | undefined;
    if (act === undefined) {
      act = (await runLayer(ctx, { attention: noop, ffn: parent }, cal.ffnIn, ctx.calibration, { activation: true })).activation;
      for (const k of ctx.cache.keys()) if (k.startsWith('ffn-activations.')) ctx.cache.delete(k);
      ctx.cache.set(key, act);
    }
    const tokens = act.length / M;
    const channels = topChannels(channelImportance(parent, ctx.ranking, { data: act, tokens }), v.intermediate);
    const init = sliceChannels(parent, channels);
    // The kept channels' activations are the parent's own: refit W_down on them exactly.
    const fit = await fitLinear(ctx.ops, selectColumns(matrix(act, M), channels), matrix(cal.ffnOut, E), init.down, ctx.ridgeGrid);
    return { init, fitted: { ...init, down: fit.weight }, ridge: fit.ridge };
  }
  // SwiGLU has no linear part at the origin (silu(0) = 0), so a linear FFN starts from zero and is all fit.
  const init = { kind: 'linear', norm: parent.norm, weight: { data: new Float32Array(E * E), shape: [E, E] } } as const;
  const normed = rmsNormRows(cal.ffnIn, parent.norm.data, ctx.config.rmsNormEps);
  const fit = await fitLinear(ctx.ops, matrix(normed, E), matrix(cal.ffnOut, E), init.weight, ctx.ridgeGrid);
  return { init, fitted: { ...init, weight: fit.weight }, ridge: fit.ridge };
}

/** The parent's layers after `layer`, ending in the in-graph KL/NLL scoring head; kept across a layer's jobs. */
async function suffixSession(ctx: JobContext, layer: number): Promise<DecoderSession> {
  const key = `suffix.${layer}`;
  let s = ctx.cache.get(key) as DecoderSession | undefined;
  if (s === undefined) {
    for (const [k, old] of ctx.cache) {
      if (k.startsWith('suffix.')) {
        await (old as DecoderSession).release();
        ctx.cache.delete(k);
      }
    }
    s = await DecoderSession.create(ctx.config, ctx.parent, { fromLayer: layer + 1, logits: 'score' }, { threads: ctx.threads });
    ctx.cache.set(key, s);
  }
  return s;
}

/** Global score: the parent with only this layer changed, KL from the parent and LM loss on validation tokens. */
async function globalScore(ctx: JobContext, layer: number, child: LayerWeights): Promise<{ kl: number; lmLoss: number }> {
  const val = ctx.validation;
  const E = ctx.config.hiddenSize;
  const { hiddenOut } = await runLayer(ctx, child, val.layers[layer].attnIn, val, { hiddenOut: true });
  const suffix = await suffixSession(ctx, layer);
  const reference = { windows: val.windows, seqLen: val.seqLen, vocab: ctx.config.vocabSize, logprobs: val.logprobs, targets: val.targets };
  return compareToReference(suffix, reference, (from, to, batch) => ({ data: hiddenOut.subarray(from * E, to * E), shape: [batch, val.seqLen, E] }));
}

/** Builds, fits and scores one candidate; returns its score and its fitted weights (by checkpoint spec key). */
export async function runJob(ctx: JobContext, job: JobSpec): Promise<{ score: CandidateScore; tensors: Record<string, Tensor> }> {
  const parentLayer = ctx.parent.layers[job.layer];
  let child: LayerWeights;
  let nmseInit: number;
  let nmseFitted: number;
  let ridge: number | null | undefined;
  let params: number;
  if (job.subBlock === 'attention') {
    const b = await buildAttention(ctx, job.layer, job.variant);
    nmseInit = await attentionNmse(ctx, b.init, job.layer, ctx.validation);
    nmseFitted = typeof b.ridge === 'number' ? await attentionNmse(ctx, b.fitted, job.layer, ctx.validation) : nmseInit;
    ridge = b.ridge;
    child = { attention: b.fitted, ffn: parentLayer.ffn };
    params = attentionParams(ctx.config, job.variant);
  } else {
    const b = await buildFfn(ctx, job.layer, job.variant);
    nmseInit = await ffnNmse(ctx, b.init, job.layer, ctx.validation);
    nmseFitted = typeof b.ridge === 'number' ? await ffnNmse(ctx, b.fitted, job.layer, ctx.validation) : nmseInit;
    ridge = b.ridge;
    child = { attention: parentLayer.attention, ffn: b.fitted };
    params = ffnParams(ctx.config, job.variant);
  }
  const { kl, lmLoss } = await globalScore(ctx, job.layer, child);
  const own = layerTensors(job.subBlock === 'attention' ? { attention: child.attention, ffn: noop } : { attention: noop, ffn: child.ffn });
  return {
    score: {
      layer: job.layer,
      subBlock: job.subBlock,
      key: jobKey(job),
      variant: job.variant,
      params,
      fitted: typeof ridge === 'number',
      ridge: ridge ?? null,
      nmseInit,
      nmse: nmseFitted,
      kl,
      lmLoss,
      lmLossDelta: lmLoss - ctx.validation.parentNll,
    },
    tensors: own,
  };
}
