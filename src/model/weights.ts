import type { ModelConfig } from '../arch/config.js';
import { kindOf } from '../arch/variants/registry.js';
import { EMPTY_BLOCK, SUB_BLOCKS, type Architecture, type AttentionVariant, type BlockConfig, type FfnVariant, type SubBlock, type Variant, type VariantOf } from '../arch/variant.js';
import type { Tensor } from '../util/tensor.js';
import { familyOf } from './families/registry.js';

/** One sub-block's weights: its variant, and its tensors by role (each kind's `tensors` lists them). Linear weights keep nn.Linear's [out, in] layout. */
export interface SubBlockWeights<V extends Variant = Variant> {
  readonly variant: V;
  readonly tensors: Readonly<Record<string, Tensor>>;
}

export type AttentionWeights = SubBlockWeights<AttentionVariant>;
export type FfnWeights = SubBlockWeights<FfnVariant>;

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

/** The architecture that a set of weights implements. */
export function architectureOf(weights: ModelWeights): Architecture {
  return weights.layers.map((l): BlockConfig => ({ attention: l.attention.variant, ffn: l.ffn.variant }));
}

/** A layer with only `sub` present (the other sub-block removed): how a sub-block is run, timed or trained alone. */
export function subBlockAlone<S extends SubBlock>(sub: S, w: SubBlockWeights<VariantOf[S]>): LayerWeights {
  const empty = { attention: { variant: EMPTY_BLOCK.attention, tensors: {} }, ffn: { variant: EMPTY_BLOCK.ffn, tensors: {} } };
  return { ...empty, [sub]: w };
}

/** One tensor a model of this architecture needs, under its checkpoint name. */
export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

/** A layer tensor's key: its sub-block and role, e.g. `attention.q` (the names inside library candidate files). */
export const tensorKey = (subBlock: SubBlock, role: string) => `${subBlock}.${role}`;

export interface CheckpointTensorSpecs {
  /** Per layer, keyed by `tensorKey`, in checkpoint order. */
  readonly layers: readonly Readonly<Record<string, TensorSpec>>[];
  readonly embed: TensorSpec;
  readonly finalNorm: TensorSpec;
  /** null when tied to the embedding. */
  readonly lmHead: TensorSpec | null;
}

/**
 * The tensors of a checkpoint with this architecture, by checkpoint name: each sub-block's kind names its
 * own (Llama's for GQA and SwiGLU, DeciLM's `self_attn.linear_attn` / `mlp.linear_mlp` for linear ones; none
 * for a no-op, not even its norm).
 */
export function checkpointTensorSpecs(config: ModelConfig, arch: Architecture): CheckpointTensorSpecs {
  const E = config.hiddenSize;
  const names = familyOf(config).tensorNames;
  const layers = arch.map((block, i) => {
    const specs: Record<string, TensorSpec> = {};
    for (const sub of SUB_BLOCKS) {
      for (const r of kindOf(sub, block[sub]).tensors(config, block[sub])) specs[tensorKey(sub, r.role)] = { name: names.layerPrefix(i) + r.name, shape: r.shape };
    }
    return specs;
  });
  return {
    layers,
    embed: { name: names.embed, shape: [config.vocabSize, E] },
    finalNorm: { name: names.finalNorm, shape: [E] },
    lmHead: config.tieEmbeddings ? null : { name: names.lmHead, shape: [config.vocabSize, E] },
  };
}

/** A sub-block's weights from a source of tensors by role. */
export function subBlockWeights<V extends Variant>(config: ModelConfig, sub: SubBlock, v: V, get: (role: string) => Tensor): SubBlockWeights<V> {
  const tensors: Record<string, Tensor> = {};
  for (const r of kindOf(sub, v).tensors(config, v)) tensors[r.role] = get(r.role);
  return { variant: v, tensors };
}

/** Assembles a layer's weights from tensors keyed as in `checkpointTensorSpecs` (e.g. "attention.q"). */
export function layerWeightsFrom(config: ModelConfig, block: BlockConfig, get: (key: string) => Tensor): LayerWeights {
  return {
    attention: subBlockWeights(config, 'attention', block.attention, (role) => get(tensorKey('attention', role))),
    ffn: subBlockWeights(config, 'ffn', block.ffn, (role) => get(tensorKey('ffn', role))),
  };
}

/** The inverse of `layerWeightsFrom`: each tensor of the given sub-blocks under its key, in checkpoint order. */
export function layerTensors(config: ModelConfig, layer: Partial<LayerWeights>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const sub of SUB_BLOCKS) {
    const w = layer[sub];
    if (w === undefined) continue;
    for (const r of kindOf(sub, w.variant).tensors(config, w.variant)) out[tensorKey(sub, r.role)] = w.tensors[r.role];
  }
  return out;
}

/**
 * A model's weights as stages use them: one piece at a time, in float32. A checkpoint on disk reads each piece
 * when asked (nothing is kept: hold on to a layer while using it), so a model never has to be in memory whole;
 * weights already in memory are a source too (`inMemory`).
 */
export interface WeightSource {
  readonly numLayers: number;
  /** What each layer is, known without reading it. */
  readonly architecture: Architecture;
  layer(i: number): LayerWeights;
  embed(): Tensor;
  /** The embedding's rows of these token ids, [ids.length, hidden]: a lookup without the whole table in memory. */
  embedRows(ids: ArrayLike<number>): Float32Array;
  finalNorm(): Tensor;
  /** The LM head; the embedding itself when `tiedHead`. */
  lmHead(): Tensor;
  readonly tiedHead: boolean;
}

/** Weights in memory as a source (every call returns the same objects). */
export function inMemory(weights: ModelWeights): WeightSource {
  return {
    numLayers: weights.layers.length,
    architecture: architectureOf(weights),
    layer: (i) => weights.layers[i],
    embed: () => weights.embed,
    embedRows: (ids) => gatherRows(weights.embed, ids),
    finalNorm: () => weights.finalNorm,
    lmHead: () => weights.lmHead,
    tiedHead: weights.lmHead === weights.embed,
  };
}

/** One layer as a model of its own (no embedding, no head): how a layer is run, timed or trained alone. */
export function layerAlone(layer: LayerWeights): WeightSource {
  const none = (): never => {
    throw new Error('a layer alone has no embedding or head');
  };
  return { numLayers: 1, architecture: [{ attention: layer.attention.variant, ffn: layer.ffn.variant }], layer: () => layer, embed: none, embedRows: none, finalNorm: none, lmHead: none, tiedHead: false };
}

/**
 * A source whose embedding rows, once read, are served from memory (it holds only the rows asked for: a timed
 * scenario's prompt and generated tokens). A checkpoint opened from its files reads every call's rows from disk, and a
 * timing counted that as the model's own time — one child against its parent measured ×2.83 so, ×3.74 in memory
 * (babyllama ×3, single prompt; 1–3.5 ms of a 6–10 ms run) — which no deployment pays.
 */
export function withCachedRows(source: WeightSource): WeightSource {
  const rows = new Map<number, Float32Array>();
  const embedRows = (ids: ArrayLike<number>): Float32Array => {
    const missing = [...new Set(Array.from(ids))].filter((id) => !rows.has(id));
    if (missing.length > 0) {
      const read = source.embedRows(missing);
      const width = read.length / missing.length;
      missing.forEach((id, k) => rows.set(id, read.slice(k * width, (k + 1) * width)));
    }
    if (ids.length === 0) return new Float32Array(0);
    const width = rows.get(ids[0])!.length;
    const out = new Float32Array(ids.length * width);
    for (let k = 0; k < ids.length; k++) out.set(rows.get(ids[k])!, k * width);
    return out;
  };
  return {
    numLayers: source.numLayers,
    architecture: source.architecture,
    layer: (i) => source.layer(i),
    embed: () => source.embed(),
    embedRows,
    finalNorm: () => source.finalNorm(),
    lmHead: () => source.lmHead(),
    tiedHead: source.tiedHead,
  };
}

/** Weights in memory or a source, as a source. */
export const sourceOf = (w: ModelWeights | WeightSource): WeightSource => ('layer' in w ? w : inMemory(w));

/** Every weight of a source in memory: for models small enough to hold whole (tests, training). */
export function materialize(source: WeightSource): ModelWeights {
  const embed = source.embed();
  return {
    embed,
    layers: Array.from({ length: source.numLayers }, (_, i) => source.layer(i)),
    finalNorm: source.finalNorm(),
    lmHead: source.tiedHead ? embed : source.lmHead(),
  };
}

/** A source with the layers of another architecture over a base's embedding and head (a child of a parent). */
export function withLayers(base: WeightSource, architecture: Architecture, layer: (i: number) => LayerWeights): WeightSource {
  return { numLayers: architecture.length, architecture, layer, embed: () => base.embed(), embedRows: (ids) => base.embedRows(ids), finalNorm: () => base.finalNorm(), lmHead: () => base.lmHead(), tiedHead: base.tiedHead };
}

/** Rows of a [rows, columns] table, [ids.length, columns]. */
export function gatherRows(table: Tensor, ids: ArrayLike<number>): Float32Array {
  const [count, columns] = table.shape;
  const out = new Float32Array(ids.length * columns);
  for (let r = 0; r < ids.length; r++) {
    const id = ids[r];
    if (!(Number.isInteger(id) && id >= 0 && id < count)) throw new RangeError(`row ${id} of a table of ${count} rows`);
    out.set(table.data.subarray(id * columns, (id + 1) * columns), r * columns);
  }
  return out;
}
