import type { ModelConfig } from '../arch/config.js';
import { kindOf, variantKey } from '../arch/variants/registry.js';
import type { AttentionVariant, FfnVariant, SubBlock, Variant } from '../arch/variant.js';
import { windowBatches } from '../data/sequences.js';
import { batchTokensFor, stagedDivergences } from '../lm/divergence.js';
import { layerAlone, layerTensors, subBlockAlone, type LayerWeights, type SubBlockWeights, type WeightSource } from '../model/weights.js';
import { tapName, type TapPoint, type TapSite } from '../onnx/emit.js';
import type { MatrixOps } from '../onnx/matmul.js';
import type { Runtime } from '../onnx/runtime.js';
import { DecoderSession } from '../onnx/session.js';
import { Stopped, type SessionCache } from '../onnx/staged.js';
import type { Tensor } from '../util/tensor.js';
import type { ActivationSet, ValidationSet } from './activations.js';
import type { DeriveContext, DeriveOptions, Derived } from './derive.js';
import { storedAs, type StoredDtype } from '../model/save.js';
import { nmse } from './fit.js';
import { trainSubBlock } from './train-block.js';

/** One candidate of the block library: a variant for one sub-block of one layer. */
export type CandidateSpec =
  | { readonly layer: number; readonly subBlock: 'attention'; readonly variant: AttentionVariant }
  | { readonly layer: number; readonly subBlock: 'ffn'; readonly variant: FfnVariant };

export const candidateKey = (c: CandidateSpec) => `${c.layer}.${variantKey(c.subBlock, c.variant)}`;

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
  /**
   * Mean KL(parent ‖ parent-with-this-candidate) per validation token, and the LM loss with it; null when scored
   * locally only (`score --local-only`, a first pass: a later score without it adds them).
   */
  readonly kl: number | null;
  readonly lmLoss: number | null;
  readonly lmLossDelta: number | null;
  /** With trained BLD: both fits' local validation NMSE, and which one the candidate keeps (the better). */
  readonly bld?: { readonly tokens: number; readonly steps: number; readonly nmseClosedForm: number; readonly nmseTrained: number; readonly kept: 'trained' | 'closed-form' };
}

/** What building candidates needs: the parent, its activations, products in onnxruntime, and sessions kept between candidates. */
export interface CandidateContext {
  readonly config: ModelConfig;
  /** The parent, read a layer at a time. */
  readonly parent: WeightSource;
  readonly calibration: ActivationSet;
  readonly validation: ValidationSet;
  readonly ops: MatrixOps;
  readonly runtime: Runtime;
  readonly options: DeriveOptions;
  /** Tokens of gradient training (blockwise local distillation) after the closed-form fit; 0: none. */
  readonly bldTokens: number;
  /**
   * How the library stores candidates' weights: each is rounded to it as soon as it is derived, fitted or trained,
   * so that what is scored is what is stored, and a resumed run scores what an uninterrupted one did.
   */
  readonly weightsDtype: StoredDtype;
  /** What is worth keeping between candidates of one layer (the parent's layer and taps); see `parentLayer`. */
  readonly cache: Map<string, unknown>;
  /** The parent's stage sessions after a candidate's layer, kept between candidates. */
  readonly suffixes: SessionCache;
  /** Asked between candidates and batches: true stops the work by throwing `Stopped` (an interrupt). */
  readonly stopped?: () => boolean;
}

/** The parent's layer `i`, read once for all candidates of that layer. */
function parentLayer(ctx: CandidateContext, i: number): LayerWeights {
  const key = `parent-layer.${i}`;
  let w = ctx.cache.get(key) as LayerWeights | undefined;
  if (w === undefined) {
    for (const k of ctx.cache.keys()) if (k.startsWith('parent-layer.')) ctx.cache.delete(k);
    ctx.cache.set(key, (w = ctx.parent.layer(i)));
  }
  return w;
}

/** Runs one layer (given explicitly) over every window of a set, from a residual-stream input; returns the requested taps as [tokens, width]. */
async function runLayer(ctx: CandidateContext, layer: LayerWeights, input: Float32Array, set: ActivationSet, sites: readonly TapSite[]): Promise<Map<TapSite, Float32Array>> {
  const E = ctx.config.hiddenSize;
  const taps: TapPoint[] = sites.map((site) => ({ layer: site === 'residual' ? 1 : 0, site }));
  const session = await DecoderSession.create({ ...ctx.config, numLayers: 1 }, layerAlone(layer), { hiddenInput: true, logits: 'none', taps }, ctx.runtime);
  const tokens = set.windows * set.seqLen;
  const out = new Map<TapSite, Float32Array>();
  try {
    for (const { batch, from: offset, to } of windowBatches(set.windows, set.seqLen, 2048)) {
      const r = await session.run({ data: input.slice(offset * E, to * E), shape: [batch, set.seqLen, E] });
      for (const tap of taps) {
        const t: Tensor | undefined = r.taps.get(tapName(tap));
        if (t === undefined) continue;
        const width = t.data.length / (t.shape[0] * t.shape[1]);
        if (!out.has(tap.site)) out.set(tap.site, new Float32Array(tokens * width));
        out.get(tap.site)!.set(t.data, offset * width);
      }
    }
  } finally {
    await session.release();
  }
  return out;
}

/** Local NMSE of a sub-block alone against the parent's output on a set (a sub-block that adds nothing predicts zeros: NMSE 1). */
async function localNmse(ctx: CandidateContext, sub: SubBlock, w: SubBlockWeights, layer: number, set: ActivationSet): Promise<number> {
  const a = set.layer(layer)[sub];
  const out = (await runLayer(ctx, subBlockAlone(sub, w), a.input, set, [`${sub}.output`])).get(`${sub}.output`);
  return nmse(out ?? new Float32Array(a.output.length), a.output);
}

/** What a variant kind derives a candidate from, for one layer and sub-block of the parent. */
function deriveContext(ctx: CandidateContext, layer: number, sub: SubBlock): DeriveContext {
  const cal = ctx.calibration.layer(layer)[sub];
  const parent = parentLayer(ctx, layer)[sub];
  const tap = async (w: SubBlockWeights, site: TapSite) => {
    const t = (await runLayer(ctx, subBlockAlone(sub, w), cal.input, ctx.calibration, [site])).get(site);
    if (t === undefined) throw new Error(`layer ${layer} ${sub}: the ${w.variant.kind} sub-block has no "${site}" tap`);
    return t;
  };
  return {
    config: ctx.config,
    layer,
    parent,
    input: cal.input,
    output: cal.output,
    tap,
    parentTap: async (site) => {
      const key = `parent-tap.${layer}.${sub}.${site}`;
      let t = ctx.cache.get(key) as Float32Array | undefined;
      if (t === undefined) {
        t = await tap(parent, site);
        // Keep one layer's parent taps: candidates run layer by layer.
        for (const k of ctx.cache.keys()) if (k.startsWith('parent-tap.') && !k.startsWith(`parent-tap.${layer}.`)) ctx.cache.delete(k);
        ctx.cache.set(key, t);
      }
      return t;
    },
    ops: ctx.ops,
    options: ctx.options,
  };
}

/**
 * Global scores of a layer's candidates: the parent with only that layer changed, KL from the parent and LM loss
 * on validation tokens. The layer's outputs enter the parent's later layers together — each stage of them is
 * built once for all the layer's candidates, not once per candidate — and every candidate's batches run as they
 * would alone, so its numbers do not depend on which others share the pass.
 */
/** The residual stream on the validation tokens after layer `layer` computed with a candidate in it: what its global score passes on. */
async function layerOutput(ctx: CandidateContext, layer: number, child: LayerWeights): Promise<Float32Array> {
  const val = ctx.validation;
  return (await runLayer(ctx, child, val.layer(layer).attention.input, val, ['residual'])).get('residual')!;
}

/** KL and LM loss of candidates' layer outputs (`outputs`) carried through the parent's later layers in one staged pass. */
async function globalScores(ctx: CandidateContext, layer: number, outputs: readonly Float32Array[]): Promise<{ kl: number; lmLoss: number }[]> {
  if (outputs.length === 0) return [];
  const val = ctx.validation;
  const E = ctx.config.hiddenSize;
  const reference = val.reference;
  const batches = [...windowBatches(val.windows, val.seqLen, batchTokensFor(reference.vocab, val.seqLen))];
  const streams = outputs.map((hiddenOut) => batches.map(({ batch, from, to }): Tensor => ({ data: hiddenOut.subarray(from * E, to * E), shape: [batch, val.seqLen, E] })));
  // The parent's layers after this one, ending in the in-graph KL/NLL scoring head.
  return stagedDivergences(ctx.config, ctx.parent, ctx.runtime, streams, batches, reference, { fromLayer: layer + 1, sessions: ctx.suffixes, stopped: ctx.stopped });
}

/** A candidate derived, fitted and scored locally; its global score comes with its layer's. */
export interface LocalCandidate {
  readonly spec: CandidateSpec;
  readonly score: Omit<CandidateScore, 'kl' | 'lmLoss' | 'lmLossDelta'>;
  readonly weights: SubBlockWeights;
}

/** Whether a candidate is the parent's own sub-block, unchanged: the parent itself, KL 0 by definition. */
const isParent = (ctx: CandidateContext, c: CandidateSpec) => variantKey(c.subBlock, c.variant) === variantKey(c.subBlock, ctx.parent.architecture[c.layer][c.subBlock]);

/** Weights as the library stores them. */
function storedWeights<V extends Variant>(ctx: CandidateContext, w: SubBlockWeights<V>): SubBlockWeights<V> {
  if (ctx.weightsDtype === 'F32') return w;
  return { variant: w.variant, tensors: Object.fromEntries(Object.entries(w.tensors).map(([role, t]) => [role, storedAs(t, ctx.weightsDtype, role)])) };
}

const storedForm = <V extends Variant>(ctx: CandidateContext, d: Derived<V>): Derived<V> => ({ ...d, init: storedWeights(ctx, d.init), fitted: storedWeights(ctx, d.fitted) });

/** Derives, fits (closed form, then BLD training when asked) and scores one candidate on its own sub-block's output. */
async function localCandidate(ctx: CandidateContext, c: CandidateSpec): Promise<LocalCandidate> {
  const sub = c.subBlock;
  const kind = kindOf(sub, c.variant);
  const d = storedForm(ctx, await kind.derive(deriveContext(ctx, c.layer, sub), c.variant));
  const nmseInit = await localNmse(ctx, sub, d.init, c.layer, ctx.validation);
  let weights = d.fitted;
  let nmseFitted = typeof d.ridge === 'number' ? await localNmse(ctx, sub, d.fitted, c.layer, ctx.validation) : nmseInit;
  let bld: CandidateScore['bld'];
  // Only candidates that were derived and fitted train further: the parent's own sub-block and no-ops have nothing to learn.
  if (ctx.bldTokens > 0 && d.ridge !== undefined) {
    const trained = { ...(await trainSubBlock(ctx, sub, d.fitted, c.layer, ctx.bldTokens)) };
    trained.weights = storedWeights(ctx, trained.weights);
    const nmseTrained = await localNmse(ctx, sub, trained.weights, c.layer, ctx.validation);
    const kept = nmseTrained < nmseFitted ? 'trained' : 'closed-form';
    bld = { tokens: ctx.bldTokens, steps: trained.steps, nmseClosedForm: nmseFitted, nmseTrained, kept };
    if (kept === 'trained') [weights, nmseFitted] = [trained.weights, nmseTrained];
  }
  return {
    spec: c,
    score: {
      layer: c.layer,
      subBlock: sub,
      key: candidateKey(c),
      variant: c.variant,
      params: kind.params(ctx.config, c.variant),
      fitted: typeof d.ridge === 'number',
      ridge: d.ridge ?? null,
      nmseInit,
      nmse: nmseFitted,
      ...(bld !== undefined ? { bld } : {}),
    },
    weights,
  };
}

/** Seconds a layer's candidates took: fitting and local scores, and the shared pass for global scores. */
export interface LayerSeconds {
  readonly local: number;
  readonly global: number;
}

/** How a layer's candidates are built (see `buildLayerCandidates`). */
export interface LayerOptions {
  /** Receives each candidate's weights as soon as they are final (to be written out by the worker). */
  readonly onLocal?: (c: CandidateSpec, tensors: Record<string, Tensor>) => void;
  /** Candidates fitted and scored locally before (a first pass): their weights and local scores, to be scored globally. */
  readonly stored?: (c: CandidateSpec) => LocalCandidate | undefined;
  /** Local scores only: no pass through the parent's later layers (kl and LM loss null). */
  readonly localOnly?: boolean;
}

/**
 * Derives, fits and scores candidates of one layer. Each is fitted and scored locally in turn (or taken as
 * stored); then all but the parent's own sub-blocks are scored globally in one pass through the parent's later
 * layers. `onLocal` writes each candidate's weights out as soon as they are final, so they never travel back to
 * the main thread (they stay here until the pass has taken the layer's outputs).
 */
export async function buildLayerCandidates(ctx: CandidateContext, candidates: readonly CandidateSpec[], o: LayerOptions = {}): Promise<{ scores: CandidateScore[]; seconds: LayerSeconds }> {
  const layers = new Set(candidates.map((c) => c.layer));
  if (layers.size > 1) throw new Error(`buildLayerCandidates: candidates of layers ${[...layers].join(', ')}; one layer at a time`);
  const t0 = performance.now();
  const layer = candidates[0]?.layer ?? 0;
  // Each candidate's layer output is computed as soon as it is fitted, and its weights let go: a worker holds one
  // candidate's weights at a time (a layer's worth of FFN widths is gigabytes at 8B), and the outputs (tokens × E).
  const local: { readonly spec: CandidateSpec; readonly score: LocalCandidate['score']; readonly output: Float32Array | null }[] = [];
  let outputSeconds = 0;
  for (const c of candidates) {
    if (ctx.stopped?.()) throw new Stopped();
    let l = o.stored?.(c);
    if (l === undefined) {
      l = await localCandidate(ctx, c);
      o.onLocal?.(c, layerTensors(ctx.config, { [c.subBlock]: l.weights }));
    }
    const scoredGlobally = !o.localOnly && !isParent(ctx, l.spec);
    const started = performance.now();
    const output = scoredGlobally ? await layerOutput(ctx, layer, { ...parentLayer(ctx, layer), [l.spec.subBlock]: l.weights }) : null;
    outputSeconds += (performance.now() - started) / 1000;
    local.push({ spec: l.spec, score: l.score, output });
  }
  const t1 = performance.now();
  const changed = local.filter((l) => l.output !== null);
  const globals = await globalScores(ctx, layer, changed.map((l) => l.output!));
  const seconds = { local: (t1 - t0) / 1000 - outputSeconds, global: (performance.now() - t1) / 1000 + outputSeconds };
  const parentNll = ctx.validation.parentNll;
  const scores = local.map((l): CandidateScore => {
    if (isParent(ctx, l.spec)) return { ...l.score, kl: 0, lmLoss: parentNll, lmLossDelta: 0 };
    if (o.localOnly) return { ...l.score, kl: null, lmLoss: null, lmLossDelta: null };
    const { kl, lmLoss } = globals[changed.indexOf(l)];
    return { ...l.score, kl, lmLoss, lmLossDelta: lmLoss - parentNll };
  });
  return { scores, seconds };
}

