import { fitLinear, matrix, rmsNormRows } from '../../bld/fit.js';
import type { DeriveContext } from '../../bld/derive.js';
import { elementBytes, matmulKernel, rmsNormKernel } from '../../hardware/kernels.js';
import type { SubBlockWeights } from '../../model/weights.js';
import { normOf } from '../../onnx/emit.js';
import { matVec, rmsNorm as rmsNormRow } from '../../reference/math.js';
import { rows, type Tensor } from '../../util/tensor.js';
import type { ModelConfig } from '../config.js';
import type { DeciSubBlockConfig } from '../decilm.js';
import type { AttentionVariant, FfnVariant, SubBlock } from '../variant.js';
import { asGqa, type Gqa } from './gqa.js';
import type { VariantKind } from './kind.js';

type LinearAttention = Extract<AttentionVariant, { kind: 'linear' }>;
type LinearFfn = Extract<FfnVariant, { kind: 'linear' }>;

/** What differs between the two linear kinds: names, the DeciLM entry, and where the fit starts. */
interface LinearSpec {
  readonly subBlock: SubBlock;
  readonly keyPrefix: string;
  readonly graphPrefix: string;
  readonly normName: string;
  readonly weightName: string;
  readonly deci: DeciSubBlockConfig;
  /** The map before fitting, [hidden, hidden]. */
  init(ctx: DeriveContext): Tensor;
}

/**
 * A sub-block replaced by one hidden×hidden matrix after its norm (Puzzle's "linear" replacements): the
 * matrix starts from `spec.init` and is refit by ridge least squares on the parent's activations.
 */
function linearKind<V extends LinearAttention | LinearFfn>(spec: LinearSpec): VariantKind<V> {
  return {
    subBlock: spec.subBlock,
    kind: 'linear' as V['kind'],
    removesSubBlock: false,
    key: () => `${spec.keyPrefix}-linear`,
    label: () => 'linear',
    describe: () => 'linear',
    problems: () => [],
    params: (config) => config.hiddenSize * config.hiddenSize + config.hiddenSize,
    cachedKvHeads: () => 0,
    flops: (config, _v, batch, seq) => 2 * batch * seq * config.hiddenSize * config.hiddenSize,
    kernels: (config, _v, step, workload) => {
      const b = elementBytes(workload);
      const N = step.batch * step.tokens;
      return [rmsNormKernel(N, config.hiddenSize, b), matmulKernel(N, config.hiddenSize, config.hiddenSize, b)];
    },
    tensors: (config) => [
      { role: 'norm', name: spec.normName, shape: [config.hiddenSize] },
      { role: 'weight', name: spec.weightName, shape: [config.hiddenSize, config.hiddenSize] },
    ],
    toDeci: () => spec.deci,
    fromDeci: (entry) => (entry.replace_with_linear === true ? ({ kind: 'linear' } as V) : null),
    spaceKeys: ['linear'],
    fromSpace: (section) => (section.boolean('linear', false) ? [{ kind: 'linear' } as V] : []),
    emit: (ctx, w, x) => {
      const p = `l${ctx.layer}_${spec.graphPrefix}`;
      const n = normOf(ctx, x, w.tensors.norm, `${p}_norm`);
      return ctx.g.node('MatMul', [n, ctx.transposed([{ role: 'weight', tensor: w.tensors.weight }], `${p}_linear_t`)], {}, `${p}_out`);
    },
    reference: (config, w, x) => x.map((row) => matVec(w.tensors.weight, rmsNormRow(row, w.tensors.norm, config.rmsNormEps))),
    derive: async (ctx) => {
      const E = ctx.config.hiddenSize;
      const norm = ctx.parent.tensors.norm;
      const init: SubBlockWeights<V> = { variant: { kind: 'linear' } as V, tensors: { norm, weight: spec.init(ctx) } };
      const normed = rmsNormRows(ctx.input, norm.data, ctx.config.rmsNormEps);
      const fit = await fitLinear(ctx.ops, matrix(normed, E), matrix(ctx.output, E), init.tensors.weight, ctx.options.ridgeGrid);
      return { init, fitted: { variant: init.variant, tensors: { norm, weight: fit.weight } }, ridge: fit.ridge };
    },
    colour: () => '#f59e0b',
  };
}

/** Attention as one matrix: no mixing between positions. */
export const linearAttention = linearKind<LinearAttention>({
  subBlock: 'attention',
  keyPrefix: 'attn',
  graphPrefix: 'attn',
  normName: 'input_layernorm.weight',
  weightName: 'self_attn.linear_attn.weight',
  deci: { n_heads_in_group: null, no_op: false, replace_with_linear: true },
  init: (ctx) => linearAttentionInit(ctx.config, asGqa(ctx.parent, ctx.layer)),
});

/** The FFN as one matrix. SwiGLU has no linear part at the origin (silu(0) = 0), so it starts from zero and is all fit. */
export const linearFfn = linearKind<LinearFfn>({
  subBlock: 'ffn',
  keyPrefix: 'ffn',
  graphPrefix: 'ffn',
  normName: 'post_attention_layernorm.weight',
  weightName: 'mlp.linear_mlp.weight',
  deci: { no_op: false, replace_with_linear: true, ffn_mult: null },
  init: (ctx) => ({ data: new Float32Array(ctx.config.hiddenSize ** 2), shape: [ctx.config.hiddenSize, ctx.config.hiddenSize] }),
});

/**
 * Linear replacement of attention, as if every token attended only to itself: W = W_O · W_V, with each
 * query head's slice of W_O paired with the K/V head it reads.
 */
export function linearAttentionInit(config: ModelConfig, w: SubBlockWeights<Gqa>): Tensor {
  const D = config.headDim;
  const H = config.numHeads;
  const K = w.variant.kvHeads;
  const E = config.hiddenSize;
  const hd = H * D;
  const { o, v } = w.tensors;
  const out = new Float64Array(E * E);
  for (let h = 0; h < H; h++) {
    const kv = Math.floor(h / (H / K));
    for (let d = 0; d < D; d++) {
      const vRow = rows(v, kv * D + d, kv * D + d + 1);
      for (let r = 0; r < E; r++) {
        const f = o.data[r * hd + h * D + d];
        if (f === 0) continue;
        for (let i = 0; i < E; i++) out[r * E + i] += f * vRow[i];
      }
    }
  }
  return { data: Float32Array.from(out), shape: [E, E] };
}
