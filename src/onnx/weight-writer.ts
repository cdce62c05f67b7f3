import type { Tensor } from '../util/tensor.js';
import { DataType, type GraphBuilder } from './graph-builder.js';
import { transposeConcat } from './layout.js';

/** One nn.Linear weight [out, in] of a fused projection, named by its key; `scale` multiplies it (softmax's 1/√d on W_q). */
export interface LinearPart {
  readonly key: string;
  readonly tensor: Tensor;
  readonly scale?: number;
}

/** A vector weight in a concatenation: scaled by `scale`, repeated `repeat` times (a per-head norm shared by heads). */
export interface VectorPart {
  readonly key: string;
  readonly tensor: Tensor;
  readonly scale?: number;
  readonly repeat?: number;
}

/** The values of vector parts, concatenated as one 1-D array (what the inference writer bakes in). */
export function concatenateParts(parts: readonly Omit<VectorPart, 'key'>[]): Float32Array {
  const out: number[] = [];
  for (const p of parts) for (let r = 0; r < (p.repeat ?? 1); r++) for (const v of p.tensor.data) out.push(v * (p.scale ?? 1));
  return Float32Array.from(out);
}

/**
 * How weights enter a graph: the one place the inference and training writers differ in what a block means.
 * Keys name each weight (`<layer>.<sub-block>.<role>`, `embed`, `final_norm`, `lm_head`).
 */
export interface WeightWriter {
  /** A weight used as stored (a norm's scale, the embedding table). */
  stored(g: GraphBuilder, key: string, t: Tensor, name: string): string;
  /** Weights [out, in] used as one [in, Σout] matrix: each transposed and scaled, side by side. */
  transposed(g: GraphBuilder, parts: readonly LinearPart[], name: string): string;
  /** x [..., in] · Wᵀ for one weight W [out, in] (the LM head): [..., out]. */
  product(g: GraphBuilder, x: string, part: LinearPart, name: string): string;
  /** Vector weights (biases, per-head norms) used as one 1-D vector: each scaled and repeated, end to end. */
  concatenated(g: GraphBuilder, parts: readonly VectorPart[], name: string): string;
}

/**
 * Inference graphs bake weights in as initializers, pre-transposed and fused (Q/K/V into one matrix, gate/up
 * into another) with scales folded in: fewer, larger GEMMs, and nothing to compute at load time.
 */
export const inferenceWeights: WeightWriter = {
  stored: (g, _key, t, name) => g.initializer(name, t.data, t.shape),
  transposed: (g, parts, name) => {
    const inDim = parts[0].tensor.shape[1];
    const outDim = parts.reduce((s, p) => s + p.tensor.shape[0], 0);
    return g.initializer(name, transposeConcat(parts.map((p) => p.tensor), parts.map((p) => p.scale ?? 1)), [inDim, outDim]);
  },
  concatenated: (g, parts, name) => {
    const values = concatenateParts(parts);
    return g.initializer(name, values, [values.length]);
  },
  // The weight as stored, multiplied transposed (Gemm's transB): the LM head's table is never copied transposed,
  // which for a real vocabulary is a gigabyte more at every build of the head's session.
  product: (g, x, part, name) => {
    const [out, inDim] = part.tensor.shape;
    if (part.scale !== undefined && part.scale !== 1) throw new Error(`${name}: the inference product takes an unscaled weight`);
    const w = g.initializer(`${name}_weight`, part.tensor.data, [out, inDim]);
    const rows = g.node('Reshape', [x, g.int64([-1, inDim])], {}, `${name}_rows`);
    const y = g.node('Gemm', [rows, w], { transB: 1 }, `${name}_gemm`);
    const leading = g.node('Slice', [g.node('Shape', [x], {}, `${name}_in_shape`), g.int64([0]), g.int64([-1])], {}, `${name}_leading`);
    return g.node('Reshape', [y, g.node('Concat', [leading, g.int64([out])], { axis: 0 }, `${name}_shape`)], {}, name);
  },
};

/**
 * Training graphs take every weight as a graph input named by its key (declared once, however often it is
 * used: a tied LM head is the embedding), and transpose, scale and concatenate in the graph, so that the
 * gradient of each weight as stored can be derived.
 */
export function trainingWeights(): WeightWriter & { readonly keys: ReadonlyMap<string, Tensor> } {
  const keys = new Map<string, Tensor>();
  const input = (g: GraphBuilder, key: string, t: Tensor) => {
    if (!keys.has(key)) {
      keys.set(key, t);
      g.input(key, DataType.FLOAT, t.shape);
    }
    return key;
  };
  return {
    keys,
    stored: (g, key, t) => input(g, key, t),
    transposed: (g, parts, name) => {
      const columns = parts.map((p, k) => {
        const t = g.node('Transpose', [input(g, p.key, p.tensor)], { perm: [1, 0] }, `${name}_${k}_t`);
        return p.scale === undefined || p.scale === 1 ? t : g.node('Mul', [t, g.float(p.scale)], {}, `${name}_${k}_scaled`);
      });
      return columns.length === 1 ? columns[0] : g.node('Concat', columns, { axis: 1 }, name);
    },
    product(g, x, part, name) {
      return g.node('MatMul', [x, this.transposed(g, [part], `${name}_t`)], {}, name);
    },
    concatenated: (g, parts, name) => {
      const pieces = parts.map((p, k) => {
        let v = input(g, p.key, p.tensor);
        if (p.scale !== undefined && p.scale !== 1) v = g.node('Mul', [v, g.float(p.scale)], {}, `${name}_${k}_scaled`);
        const n = p.tensor.shape[0];
        const repeat = p.repeat ?? 1;
        return repeat === 1 ? v : g.node('Reshape', [g.node('Expand', [g.node('Unsqueeze', [v, g.int64([0])]), g.int64([repeat, n])]), g.int64([repeat * n])], {}, `${name}_${k}_repeated`);
      });
      return pieces.length === 1 ? pieces[0] : g.node('Concat', pieces, { axis: 0 }, name);
    },
  };
}
