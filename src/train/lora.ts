import { SUB_BLOCKS } from '../arch/variant.js';
import { withLayers, type LayerWeights, type WeightSource } from '../model/weights.js';
import type { GraphBuilder } from '../onnx/graph-builder.js';
import { DataType } from '../onnx/graph-builder.js';
import { trainingWeights, type WeightWriter } from '../onnx/weight-writer.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';

/**
 * Low-rank adapters (Hu et al., LoRA): each linear weight W [out, in] is used as W + (α / r)·B·A, with A [r, in]
 * and B [out, r] trained and W frozen. What a model too large to train whole in memory is healed with — the
 * recovery step of LLM-Pruner and SliceGPT — at a few bytes of optimizer state per adapter entry.
 */
export interface LoraSettings {
  readonly rank: number;
  readonly alpha: number;
}

export const LORA_DEFAULTS: LoraSettings = { rank: 16, alpha: 32 };

export interface Adapter {
  readonly a: Tensor;
  readonly b: Tensor;
}

/** The graph inputs of the adapter of weight `key`. */
export const adapterInputs = (key: string) => ({ a: `lora_a.${key}`, b: `lora_b.${key}` });

/**
 * A fresh adapter of a weight [out, in] as PEFT makes one: A uniform in ±1/√in (kaiming_uniform with a = √5),
 * B zero — so the adapted model starts exactly as the model. Seeded by `seed` and the weight's key.
 */
export function freshAdapter(key: string, [out, inDim]: readonly number[], rank: number, seed: number): Adapter {
  let h = seed >>> 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
  const rng = new Rng(h);
  const bound = 1 / Math.sqrt(inDim);
  return {
    a: { data: Float32Array.from({ length: rank * inDim }, () => (2 * rng.next() - 1) * bound), shape: [rank, inDim] },
    b: { data: new Float32Array(out * rank), shape: [out, rank] },
  };
}

/**
 * How a layer graph takes its weights when the layer is trained through adapters: every weight is a graph
 * input (fed from wherever it is kept, never copied into the graph), and with `lora` each linear weight is used
 * as W + (α / r)·B·A — its adapter's A and B are inputs too (`adapterInputs`), the only ones to differentiate.
 * `adapted` lists them, by weight key, with the shape [out, in] of the weight.
 */
export function adapterWeights(lora: LoraSettings | null): WeightWriter & { readonly keys: ReadonlyMap<string, Tensor>; readonly adapted: ReadonlyMap<string, readonly number[]> } {
  const base = trainingWeights();
  const adapted = new Map<string, readonly number[]>();
  const delta = (g: GraphBuilder, key: string, shape: readonly number[], scale: number, name: string) => {
    const { a, b } = adapterInputs(key);
    if (!adapted.has(key)) {
      adapted.set(key, shape);
      g.input(a, DataType.FLOAT, [lora!.rank, shape[1]]);
      g.input(b, DataType.FLOAT, [shape[0], lora!.rank]);
    }
    // (B·A)ᵀ = Aᵀ·Bᵀ: [in, out], as the transposed weight it is added to.
    const product = g.node('MatMul', [g.node('Transpose', [a], { perm: [1, 0] }, `${name}_at`), g.node('Transpose', [b], { perm: [1, 0] }, `${name}_bt`)], {}, `${name}_delta`);
    return g.node('Mul', [product, g.float(scale * (lora!.alpha / lora!.rank))], {}, `${name}_delta_scaled`);
  };
  return {
    keys: base.keys,
    adapted,
    stored: base.stored,
    concatenated: base.concatenated,
    transposed: (g, parts, name) => {
      const columns = parts.map((p, k) => {
        const w = base.transposed(g, [p], `${name}_${k}`);
        return lora === null ? w : g.node('Add', [w, delta(g, p.key, p.tensor.shape, p.scale ?? 1, `${name}_${k}`)], {}, `${name}_${k}_adapted`);
      });
      return columns.length === 1 ? columns[0] : g.node('Concat', columns, { axis: 1 }, name);
    },
    product: () => {
      throw new Error('a layer graph has no LM head');
    },
  };
}

/** W + (α / r)·B·A for one weight (float64 sums, as stored in float32). */
export function mergeAdapter(w: Tensor, adapter: Adapter, lora: LoraSettings): Tensor {
  const [out, inDim] = w.shape;
  const r = lora.rank;
  const s = lora.alpha / r;
  const merged = new Float32Array(w.data);
  const row = new Float64Array(inDim);
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = adapter.b.data[o * r + k];
      if (bk === 0) continue;
      const a = adapter.a.data.subarray(k * inDim, (k + 1) * inDim);
      for (let i = 0; i < inDim; i++) row[i] += bk * a[i];
    }
    for (let i = 0; i < inDim; i++) merged[o * inDim + i] += s * row[i];
  }
  return { data: merged, shape: w.shape };
}

/** The key of a layer weight in a whole model: `<layer>.<sub-block>.<role>`. */
export const layerWeightKey = (layer: number, sub: string, role: string) => `${layer}.${sub}.${role}`;

/**
 * A model with its adapters merged into its weights, read a layer at a time (as export writes it): adapters by
 * `layerWeightKey`; weights without one as they are.
 */
export function mergedSource(source: WeightSource, adapters: ReadonlyMap<string, Adapter>, lora: LoraSettings): WeightSource {
  return withLayers(source, source.architecture, (i) => {
    const layer = source.layer(i);
    const merge = <S extends keyof LayerWeights>(sub: S): LayerWeights[S] => {
      const tensors = Object.fromEntries(Object.entries(layer[sub].tensors).map(([role, t]) => {
        const adapter = adapters.get(layerWeightKey(i, sub, role));
        return [role, adapter === undefined ? t : mergeAdapter(t, adapter, lora)];
      }));
      return { ...layer[sub], tensors } as LayerWeights[S];
    };
    return Object.fromEntries(SUB_BLOCKS.map((sub) => [sub, merge(sub)])) as unknown as LayerWeights;
  });
}
