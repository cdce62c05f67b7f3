import { fitLinear, matrix } from '../../bld/fit.js';
import { withTensors } from '../../bld/derive.js';
import { elementBytes, matmulKernel, rmsNormKernel } from '../../hardware/kernels.js';
import type { SubBlockWeights } from '../../model/weights.js';
import { normOf, pastKeyName, pastValueName, presentKeyName, presentValueName, rmsNorm, rope } from '../../onnx/emit.js';
import { floatAttr } from '../../onnx/graph-builder.js';
import { applyRope, matVec, rmsNorm as rmsNormRow } from '../../reference/math.js';
import { fail } from '../../util/errors.js';
import type { Tensor } from '../../util/tensor.js';
import type { ModelConfig } from '../config.js';
import { ropeInverseFrequencies } from '../rope.js';
import type { AttentionVariant } from '../variant.js';
import type { VariantKind } from './kind.js';

export type Gqa = Extract<AttentionVariant, { kind: 'gqa' }>;

/**
 * Grouped-query attention with `kvHeads` K/V heads (the parent's own count, or fewer: Puzzle's
 * n_heads_in_group). Query heads are always the parent's; each K/V head serves numHeads / kvHeads of them.
 */
export const gqa: VariantKind<Gqa> = {
  subBlock: 'attention',
  kind: 'gqa',
  removesSubBlock: false,
  key: (v) => `attn-gqa${v.kvHeads}`,
  label: (v) => `GQA ${v.kvHeads}`,
  describe: (v) => `GQA ${v.kvHeads} KV heads`,
  problems: (config, v) =>
    !Number.isInteger(v.kvHeads) || v.kvHeads < 1 || config.numHeads % v.kvHeads !== 0 ? [`${v.kvHeads} KV heads does not divide the ${config.numHeads} query heads`] : [],
  params: (config, v) => gqa.tensors(config, v).reduce((s, t) => s + t.shape.reduce((p, d) => p * d, 1), 0),
  cachedKvHeads: (_config, v) => v.kvHeads,

  /** Projections, plus scores and their weighted sum over the full seq × seq square (the mask zeroes half of it after the fact). */
  flops: (config, v, batch, seq) => {
    const N = batch * seq;
    const E = config.hiddenSize;
    const qDim = config.numHeads * config.headDim;
    const kvDim = v.kvHeads * config.headDim;
    const projections = 2 * N * E * (qDim + 2 * kvDim) + 2 * N * qDim * E;
    const scoresAndMix = 2 * (2 * batch * config.numHeads * seq * seq * config.headDim);
    return projections + scoresAndMix;
  },

  kernels: (config, v, step, workload) => {
    const b = elementBytes(workload);
    const E = config.hiddenSize;
    const N = step.batch * step.tokens;
    const H = config.numHeads;
    const D = config.headDim;
    const K = v.kvHeads;
    const total = step.pastTokens + step.tokens;
    // Query i of a step sees pastTokens + i keys (causal); a fused kernel skips the masked rest.
    const pairs = step.tokens * step.pastTokens + (step.tokens * (step.tokens + 1)) / 2;
    return [
      rmsNormKernel(N, E, b),
      matmulKernel(N, E, (H + 2 * K) * D, b),
      // RoPE on q and k, and the new K/V written to the cache.
      { flops: 6 * N * (H + K) * D, bytes: 2 * N * (H + K) * D * b.a + 2 * N * K * D * b.kv },
      // Scores and weighted sum over the whole cache: every K/V position is read once per sequence.
      { flops: 4 * step.batch * H * D * pairs, bytes: step.batch * total * 2 * K * D * b.kv + 2 * N * H * D * b.a },
      matmulKernel(N, H * D, E, b),
    ];
  },

  tensors: (config, v) => {
    const E = config.hiddenSize;
    const D = config.headDim;
    return [
      { role: 'norm', name: 'input_layernorm.weight', shape: [E] },
      { role: 'q', name: 'self_attn.q_proj.weight', shape: [config.numHeads * D, E] },
      { role: 'k', name: 'self_attn.k_proj.weight', shape: [v.kvHeads * D, E] },
      { role: 'v', name: 'self_attn.v_proj.weight', shape: [v.kvHeads * D, E] },
      { role: 'o', name: 'self_attn.o_proj.weight', shape: [E, config.numHeads * D] },
      ...(config.qkvBias
        ? [
            { role: 'q_bias', name: 'self_attn.q_proj.bias', shape: [config.numHeads * D] },
            { role: 'k_bias', name: 'self_attn.k_proj.bias', shape: [v.kvHeads * D] },
            { role: 'v_bias', name: 'self_attn.v_proj.bias', shape: [v.kvHeads * D] },
          ]
        : []),
      ...(config.qkNorm
        ? [
            { role: 'q_norm', name: 'self_attn.q_norm.weight', shape: [D] },
            { role: 'k_norm', name: 'self_attn.k_norm.weight', shape: [D] },
          ]
        : []),
    ];
  },

  // DeciLM says a sliding window per layer (window_length); Tessera's families have one for every layer.
  toDeci: (config, v) => ({
    n_heads_in_group: config.numHeads / v.kvHeads,
    no_op: false,
    replace_with_linear: false,
    ...(config.slidingWindow !== null ? { window_length: config.slidingWindow } : {}),
  }),
  fromDeci: (entry, config, where) => {
    if (entry.no_op === true || entry.replace_with_linear === true) return null;
    const g = entry.n_heads_in_group;
    if (typeof g !== 'number' || !Number.isInteger(g) || g < 1 || config.numHeads % g !== 0) {
      fail(`${where('attention.n_heads_in_group')} is ${JSON.stringify(g)}; expected a divisor of num_attention_heads (${config.numHeads})`);
    }
    return { kind: 'gqa', kvHeads: config.numHeads / g };
  },

  spaceKeys: ['kvHeads'],
  fromSpace: (section, config, at) => {
    const kv = section.object('kvHeads');
    if (kv === null) return [];
    kv.onlyKeys(['values', 'fractions', 'headsInGroup', 'onlyWhereValid']);
    const lenient = kv.flag('onlyWhereValid', false);
    const H = config.numHeads;
    const out: Gqa[] = [];
    const add = (count: number, sub: string, source: string) => {
      // Fewer K/V heads are built by mean-pooling groups of the parent's, so the count must divide those too.
      const valid = Number.isInteger(count) && count >= 1 && H % count === 0 && config.numKvHeads % count === 0;
      if (valid) out.push({ kind: 'gqa', kvHeads: count });
      else if (!lenient) {
        fail(`${at.file}: field "${at.field}.kvHeads.${sub}" (layer ${at.layer}): ${source} gives ${count} KV heads; expected a divisor of both the ${H} query heads and the parent's ${config.numKvHeads} KV heads (or set onlyWhereValid)`);
      }
    };
    if (kv.has('values')) for (const v of kv.positiveNumbers('values', 'KV-head counts')) add(v, 'values', `${v}`);
    if (kv.has('fractions')) for (const f of kv.positiveNumbers('fractions', 'fractions of the parent\'s KV heads')) add(config.numKvHeads * f, 'fractions', `fraction ${f} of ${config.numKvHeads}`);
    if (kv.has('headsInGroup')) for (const g of kv.positiveNumbers('headsInGroup', 'n_heads_in_group values')) add(H / g, 'headsInGroup', `n_heads_in_group ${g}`);
    return out;
  },

  emit: (ctx, w, x) => {
    const { g, config, layer: i, seq, tap } = ctx;
    const t = w.tensors;
    const p = `l${i}_attn`;
    const n = normOf(ctx, x, t.norm, `${p}_norm`);
    const H = config.numHeads;
    const D = config.headDim;
    const K = w.variant.kvHeads;
    const group = H / K;
    // Softmax's 1/sqrt(D) scales the queries: RoPE is linear, so scaling before or after it is the same. It goes
    // into W_q (and its bias) — or, where queries are normalised per head, into the norm's weight.
    const scale = 1 / Math.sqrt(D);
    const projectionScale = config.qkNorm ? 1 : scale;
    const qkvT = ctx.transposed([{ role: 'q', tensor: t.q, scale: projectionScale }, { role: 'k', tensor: t.k }, { role: 'v', tensor: t.v }], `${p}_qkv_t`);
    let qkv = g.node('MatMul', [n, qkvT], {}, `${p}_qkv`);
    if (config.qkvBias) {
      const bias = ctx.concatenated([{ role: 'q_bias', tensor: t.q_bias, scale: projectionScale }, { role: 'k_bias', tensor: t.k_bias }, { role: 'v_bias', tensor: t.v_bias }], `${p}_qkv_bias`);
      qkv = g.node('Add', [qkv, bias], {}, `${p}_qkv_biased`);
    }
    const [qk, v] = g.nodeN('Split', [qkv, g.int64([(H + K) * D, K * D])], 2, { axis: -1 }, `${p}_qk_v`);
    let qkHeads = g.node('Reshape', [qk, g.int64([0, 0, H + K, D])], {}, `${p}_qk_heads`);
    if (config.qkNorm) {
      // One RMSNorm over the head dimension for all H + K heads, each with its own weight row (q_norm for queries, k_norm for keys).
      const weights = () => g.node('Reshape', [ctx.concatenated([{ role: 'q_norm', tensor: t.q_norm, scale, repeat: H }, { role: 'k_norm', tensor: t.k_norm, repeat: K }], `${p}_qk_norm_w`), g.int64([H + K, D])]);
      qkHeads = rmsNorm(g, qkHeads, weights, config.rmsNormEps, `${p}_qk_norm`);
    }
    if (seq.fused !== null) {
      // onnxruntime's kernel: RoPE (rotate-half), the causal (or sliding) mask, grouped heads and the K/V cache in one op.
      // Its own 1/√D stays off (scale 1): the queries carry it already, as above.
      // Its RoPE takes head sizes that are multiples of 16; other heads are rotated here first.
      const f = seq.fused();
      const inKernel = D % 16 === 0;
      if (!inKernel) qkHeads = rope(g, qkHeads, seq, D / 2, `${p}_qk`);
      const flat = config.qkNorm || !inKernel ? g.node('Reshape', [qkHeads, g.int64([0, 0, (H + K) * D])], {}, `${p}_qk_flat`) : qk;
      const [q, k] = g.nodeN('Split', [flat, g.int64([H * D, K * D])], 2, { axis: -1 }, `${p}_q_k`);
      const past = seq.cached ? [pastKeyName(i), pastValueName(i)] : ['', ''];
      const rotary = inKernel ? f.rotaryCaches() : [];
      const attrs = { num_heads: H, kv_num_heads: K, do_rotary: inKernel ? 1 : 0, rotary_interleaved: 0, scale: floatAttr(1), local_window_size: config.slidingWindow ?? -1 };
      const [merged, presentKey, presentValue] = g.nodeN('com.microsoft.GroupQueryAttention', [q, k, v, ...past, f.seqlensK, f.totalLength, ...rotary], 3, attrs, `${p}_gqa`);
      if (seq.cached) {
        g.expose(presentKey, presentKeyName(i), ['batch', K, 'total', D]);
        g.expose(presentValue, presentValueName(i), ['batch', K, 'total', D]);
      }
      tap('attention.context', merged, ['batch', 'seq', H * D]);
      return g.node('MatMul', [merged, ctx.transposed([{ role: 'o', tensor: t.o }], `${p}_o_t`)], {}, `${p}_out`);
    }
    qkHeads = rope(g, qkHeads, seq, D / 2, `${p}_qk`);
    const [q, k] = g.nodeN('Split', [qkHeads, g.int64([H, K])], 2, { axis: 2 }, `${p}_q_k`);
    // K/V as [B, K, S, D] (the cache layout), extended by the past when decoding incrementally.
    let keys = g.node('Transpose', [k], { perm: [0, 2, 1, 3] }, `${p}_k_bktd`);
    let values = g.node('Transpose', [g.node('Reshape', [v, g.int64([0, 0, K, D])], {}, `${p}_v_heads`)], { perm: [0, 2, 1, 3] }, `${p}_v_bktd`);
    if (seq.cached) {
      keys = g.node('Concat', [pastKeyName(i), keys], { axis: 2 }, `${p}_keys`);
      values = g.node('Concat', [pastValueName(i), values], { axis: 2 }, `${p}_values`);
      g.expose(keys, presentKeyName(i), ['batch', K, 'total', D]);
      g.expose(values, presentValueName(i), ['batch', K, 'total', D]);
    }
    // Grouped heads without copying K/V: queries as [B, K, group, T, D] broadcast against keys [B, K, 1, D, S].
    const q5 = g.node('Transpose', [g.node('Reshape', [q, g.int64([0, 0, K, group, D])], {}, `${p}_q5`)], { perm: [0, 2, 3, 1, 4] }, `${p}_q_bkgtd`);
    const kT = g.node('Transpose', [g.node('Unsqueeze', [keys, g.int64([2])], {}, `${p}_k5`)], { perm: [0, 1, 2, 4, 3] }, `${p}_k_bk1ds`);
    const v5 = g.node('Unsqueeze', [values, g.int64([2])], {}, `${p}_v_bk1sd`);
    const scores = g.node('Add', [g.node('MatMul', [q5, kT], {}, `${p}_qk_scores`), seq.mask], {}, `${p}_scores`);
    const probs = g.node('Softmax', [scores], { axis: -1 }, `${p}_probs`);
    const ctxHeads = g.node('MatMul', [probs, v5], {}, `${p}_ctx`);
    const merged = g.node('Reshape', [g.node('Transpose', [ctxHeads], { perm: [0, 3, 1, 2, 4] }, `${p}_ctx_btkgd`), g.int64([0, 0, H * D])], {}, `${p}_merged`);
    tap('attention.context', merged, ['batch', 'seq', H * D]);
    return g.node('MatMul', [merged, ctx.transposed([{ role: 'o', tensor: t.o }], `${p}_o_t`)], {}, `${p}_out`);
  },

  reference: (config, w, x) => {
    const t = w.tensors;
    const normed = x.map((row) => rmsNormRow(row, t.norm, config.rmsNormEps));
    const H = config.numHeads;
    const D = config.headDim;
    const K = w.variant.kvHeads;
    const invFreq = ropeInverseFrequencies(config);
    // Each projection (plus its bias, where the family has one), cut into heads (each normalised, where it has q/k norms).
    const heads = (w: Tensor, bias: Tensor | undefined, norm: Tensor | undefined, count: number, row: Float64Array) => {
      const y = matVec(w, row);
      if (bias !== undefined) y.forEach((_, i) => (y[i] += bias.data[i]));
      return Array.from({ length: count }, (_, h) => {
        const part = y.slice(h * D, (h + 1) * D);
        return norm === undefined ? part : rmsNormRow(part, norm, config.rmsNormEps);
      });
    };
    const q = normed.map((row, pos) => heads(t.q, t.q_bias, t.q_norm, H, row).map((h) => applyRope(h, pos, invFreq)));
    const k = normed.map((row, pos) => heads(t.k, t.k_bias, t.k_norm, K, row).map((h) => applyRope(h, pos, invFreq)));
    const v = normed.map((row) => heads(t.v, t.v_bias, undefined, K, row));
    const window = config.slidingWindow ?? Infinity;
    return x.map((_, pos) => {
      const merged = new Float64Array(H * D);
      for (let h = 0; h < H; h++) {
        const kvHead = Math.floor(h / (H / K)); // repeat_kv: query head h reads K/V head h // group
        const visible: number[] = [];
        for (let s = 0; s <= pos; s++) if (pos - s < window) visible.push(s);
        const scores = visible.map((s) => {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[pos][h][d] * k[s][kvHead][d];
          return dot / Math.sqrt(D);
        });
        const max = Math.max(...scores);
        const exps = scores.map((sc) => Math.exp(sc - max));
        const total = exps.reduce((a, b) => a + b, 0);
        visible.forEach((s, j) => {
          for (let d = 0; d < D; d++) merged[h * D + d] += (exps[j] / total) * v[s][kvHead][d];
        });
      }
      return matVec(t.o, merged);
    });
  },

  derive: async (ctx, v) => {
    const parent = asGqa(ctx.parent, ctx.layer);
    if (v.kvHeads === parent.variant.kvHeads) return { init: parent, fitted: parent, ridge: undefined };
    const init = meanPoolKvHeads(ctx.config, parent, v.kvHeads);
    // Refit o_proj on the pooled heads' context: the exact least-squares optimum for that matrix.
    const context = await ctx.tap(init, 'attention.context');
    const hd = ctx.config.numHeads * ctx.config.headDim;
    const fit = await fitLinear(ctx.ops, matrix(context, hd), matrix(ctx.output, ctx.config.hiddenSize), init.tensors.o, ctx.options.ridgeGrid);
    return { init, fitted: withTensors(init, { o: fit.weight }), ridge: fit.ridge };
  },

  colour: (config, v) => `hsl(217, 80%, ${Math.round(80 - 45 * (v.kvHeads / config.numKvHeads))}%)`,
};

/** The parent's attention as GQA weights, which every attention candidate is derived from. */
export function asGqa(w: SubBlockWeights, layer: number): SubBlockWeights<Gqa> {
  if (w.variant.kind !== 'gqa') throw new Error(`layer ${layer} of the parent has no GQA attention to derive candidates from`);
  return w as SubBlockWeights<Gqa>;
}

/** Fewer K/V heads: each new head is the mean of the consecutive parent heads it replaces; queries keep all heads. */
export function meanPoolKvHeads(config: ModelConfig, w: SubBlockWeights<Gqa>, kvHeads: number): SubBlockWeights<Gqa> {
  const D = config.headDim;
  const parentKv = w.variant.kvHeads;
  if (parentKv % kvHeads !== 0) throw new Error(`cannot pool ${parentKv} KV heads into ${kvHeads}`);
  const group = parentKv / kvHeads;
  // A head is D rows of a projection, or D entries of its bias: either way D·width consecutive values.
  const pool = (t: Tensor): Tensor => {
    const width = t.shape.length === 2 ? t.shape[1] : 1;
    const size = D * width;
    const out = new Float32Array(kvHeads * size);
    for (let h = 0; h < kvHeads; h++) {
      for (let g = 0; g < group; g++) {
        const src = t.data.subarray((h * group + g) * size, (h * group + g + 1) * size);
        for (let k = 0; k < size; k++) out[h * size + k] += src[k] / group;
      }
    }
    return { data: out, shape: t.shape.length === 2 ? [kvHeads * D, width] : [kvHeads * D] };
  };
  const pooled = ['k', 'v', 'k_bias', 'v_bias'].filter((role) => w.tensors[role] !== undefined);
  return { variant: { kind: 'gqa', kvHeads }, tensors: { ...w.tensors, ...Object.fromEntries(pooled.map((role) => [role, pool(w.tensors[role])])) } };
}
