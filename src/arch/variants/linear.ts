import { fitLinear, matrix, rmsNormRows } from '../../bld/fit.js';
import type { DeriveContext, Derived } from '../../bld/derive.js';
import { elementBytes, matmulKernel, rmsNormKernel } from '../../hardware/kernels.js';
import type { SubBlockWeights } from '../../model/weights.js';
import { normOf } from '../../onnx/emit.js';
import { matVec, rmsNorm as rmsNormRow } from '../../reference/math.js';
import type { MatrixOps } from '../../onnx/matmul.js';
import type { Tensor } from '../../util/tensor.js';
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
  /** Whether the map has a constant term (a linear attention of a parent with v biases keeps W_O·b_v). */
  hasBias(config: ModelConfig): boolean;
  readonly biasName: string;
  /** The map before fitting, [hidden, hidden], and its constant term where it has one. */
  init(ctx: DeriveContext): Promise<{ weight: Tensor; bias?: Tensor }>;
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
    params: (config) => config.hiddenSize * config.hiddenSize + config.hiddenSize * (spec.hasBias(config) ? 2 : 1),
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
      ...(spec.hasBias(config) ? [{ role: 'bias', name: spec.biasName, shape: [config.hiddenSize] }] : []),
    ],
    toDeci: () => spec.deci,
    fromDeci: (entry) => (entry.replace_with_linear === true ? ({ kind: 'linear' } as V) : null),
    spaceKeys: ['linear'],
    fromSpace: (section) => (section.flag('linear', false) ? [{ kind: 'linear' } as V] : []),
    emit: (ctx, w, x) => {
      const p = `l${ctx.layer}_${spec.graphPrefix}`;
      const n = normOf(ctx, x, w.tensors.norm, `${p}_norm`);
      const out = ctx.g.node('MatMul', [n, ctx.transposed([{ role: 'weight', tensor: w.tensors.weight }], `${p}_linear_t`)], {}, `${p}_out`);
      return w.tensors.bias === undefined ? out : ctx.g.node('Add', [out, ctx.stored('bias', w.tensors.bias, `${p}_linear_bias`)], {}, `${p}_out_biased`);
    },
    reference: (config, w, x) =>
      x.map((row) => {
        const y = matVec(w.tensors.weight, rmsNormRow(row, w.tensors.norm, config.rmsNormEps));
        return w.tensors.bias === undefined ? y : y.map((v, i) => v + w.tensors.bias.data[i]);
      }),
    derive: async (ctx): Promise<Derived<V>> => {
      const E = ctx.config.hiddenSize;
      const norm = ctx.parent.tensors.norm;
      const start = await spec.init(ctx);
      const init: SubBlockWeights<V> = { variant: { kind: 'linear' } as V, tensors: { norm, weight: start.weight, ...(start.bias ? { bias: start.bias } : {}) } };
      const normed = rmsNormRows(ctx.input, norm.data, ctx.config.rmsNormEps);
      if (start.bias === undefined) {
        const fit = await fitLinear(ctx.ops, matrix(normed, E), matrix(ctx.output, E), start.weight, ctx.options.ridgeGrid);
        const fitted: SubBlockWeights<V> = { variant: init.variant, tensors: { norm, weight: fit.weight } };
        return { init, fitted, ridge: fit.ridge };
      }
      // An affine map is a linear one of the input with a constant 1 appended: fit [W | b] together.
      const fit = await fitLinear(ctx.ops, matrix(withOnes(normed, E), E + 1), matrix(ctx.output, E), joinColumns(start.weight, start.bias), ctx.options.ridgeGrid);
      const { weight, bias } = splitColumns(fit.weight);
      return { init, fitted: { variant: init.variant, tensors: { norm, weight, bias } }, ridge: fit.ridge };
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
  hasBias: (config) => config.qkvBias,
  biasName: 'self_attn.linear_attn.bias',
  init: (ctx) => linearAttentionInit(ctx.config, asGqa(ctx.parent, ctx.layer), ctx.ops),
});

/** The FFN as one matrix. SwiGLU has no linear part at the origin (silu(0) = 0), so it starts from zero and is all fit. */
export const linearFfn = linearKind<LinearFfn>({
  subBlock: 'ffn',
  keyPrefix: 'ffn',
  graphPrefix: 'ffn',
  normName: 'post_attention_layernorm.weight',
  weightName: 'mlp.linear_mlp.weight',
  deci: { no_op: false, replace_with_linear: true, ffn_mult: null },
  hasBias: () => false,
  biasName: 'mlp.linear_mlp.bias',
  init: async (ctx) => ({ weight: { data: new Float32Array(ctx.config.hiddenSize ** 2), shape: [ctx.config.hiddenSize, ctx.config.hiddenSize] } }),
});

/** Rows of [rows, E] with a 1 appended to each: [rows, E + 1]. */
function withOnes(x: Float32Array, E: number): Float32Array {
  const rowsCount = x.length / E;
  const out = new Float32Array(rowsCount * (E + 1));
  for (let r = 0; r < rowsCount; r++) {
    out.set(x.subarray(r * E, (r + 1) * E), r * (E + 1));
    out[r * (E + 1) + E] = 1;
  }
  return out;
}

/** [W | b] as one nn.Linear weight [out, in + 1]. */
function joinColumns(w: Tensor, b: Tensor): Tensor {
  const [out, inDim] = w.shape;
  const data = new Float32Array(out * (inDim + 1));
  for (let o = 0; o < out; o++) {
    data.set(w.data.subarray(o * inDim, (o + 1) * inDim), o * (inDim + 1));
    data[o * (inDim + 1) + inDim] = b.data[o];
  }
  return { data, shape: [out, inDim + 1] };
}

function splitColumns(wb: Tensor): { weight: Tensor; bias: Tensor } {
  const [out, cols] = wb.shape;
  const inDim = cols - 1;
  const weight = new Float32Array(out * inDim);
  const bias = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    weight.set(wb.data.subarray(o * cols, o * cols + inDim), o * inDim);
    bias[o] = wb.data[o * cols + inDim];
  }
  return { weight: { data: weight, shape: [out, inDim] }, bias: { data: bias, shape: [out] } };
}

/**
 * Linear replacement of attention, as if every token attended only to itself: W = W_O · W_V, with each
 * query head's slice of W_O paired with the K/V head it reads.
 */
export async function linearAttentionInit(config: ModelConfig, w: SubBlockWeights<Gqa>, ops: MatrixOps): Promise<{ weight: Tensor; bias?: Tensor }> {
  const D = config.headDim;
  const H = config.numHeads;
  const K = w.variant.kvHeads;
  const E = config.hiddenSize;
  const hd = H * D;
  const { o, v, v_bias: vBias } = w.tensors;
  // W_V with each query head's K/V head repeated in its place: [hd, E] (and b_v likewise).
  const vRep = new Float32Array(hd * E);
  const bRep = new Float32Array(hd);
  for (let h = 0; h < H; h++) {
    const kv = Math.floor(h / (H / K));
    vRep.set(v.data.subarray(kv * D * E, (kv + 1) * D * E), h * D * E);
    if (vBias !== undefined) bRep.set(vBias.data.subarray(kv * D, (kv + 1) * D), h * D);
  }
  // [E, E] = W_O [E, hd] · W_V repeated [hd, E]: a product of the model's size, so onnxruntime computes it.
  const weight = await ops.matmul({ data: o.data, rows: E, cols: hd }, { data: vRep, rows: hd, cols: E });
  if (vBias === undefined) return { weight: { data: weight.data, shape: [E, E] } };
  // Softmax weights sum to one, so V's bias passes through attention unchanged: W_O·b_v.
  const bias = await ops.matmul({ data: o.data, rows: E, cols: hd }, { data: bRep, rows: hd, cols: 1 });
  return { weight: { data: weight.data, shape: [E, E] }, bias: { data: bias.data, shape: [E] } };
}
