import { withTensors, type ChannelRanking } from '../../bld/derive.js';
import { fitLinear, matrix, selectColumns } from '../../bld/fit.js';
import { elementBytes, matmulKernel, rmsNormKernel } from '../../hardware/kernels.js';
import type { SubBlockWeights } from '../../model/weights.js';
import { normOf } from '../../onnx/emit.js';
import { matVec, rmsNorm as rmsNormRow } from '../../reference/math.js';
import { fail } from '../../util/errors.js';
import { rows, type Tensor } from '../../util/tensor.js';
import { ffnMultToIntermediate, intermediateToFfnMult } from '../ffn-mult.js';
import type { FfnVariant } from '../variant.js';
import type { VariantKind } from './kind.js';

export type SwiGlu = Extract<FfnVariant, { kind: 'swiglu' }>;

/** The SwiGLU FFN, down_proj(silu(gate_proj(x)) · up_proj(x)), at the parent's width or narrower (pruned channels). */
export const swiglu: VariantKind<SwiGlu> = {
  subBlock: 'ffn',
  kind: 'swiglu',
  removesSubBlock: false,
  key: (v) => `ffn-swiglu${v.intermediate}`,
  label: (v) => `SwiGLU ${v.intermediate}`,
  describe: (v) => `SwiGLU ${v.intermediate}`,
  problems: (_config, v) => (!Number.isInteger(v.intermediate) || v.intermediate < 1 ? [`FFN width ${v.intermediate} is not a positive integer`] : []),
  params: (config, v) => 3 * config.hiddenSize * v.intermediate + config.hiddenSize,
  cachedKvHeads: () => 0,
  flops: (config, v, batch, seq) => 2 * batch * seq * config.hiddenSize * 3 * v.intermediate,

  kernels: (config, v, step, workload) => {
    const b = elementBytes(workload);
    const E = config.hiddenSize;
    const N = step.batch * step.tokens;
    const M = v.intermediate;
    return [
      rmsNormKernel(N, E, b),
      matmulKernel(N, E, 2 * M, b),
      // silu(gate) · up
      { flops: 5 * N * M, bytes: 3 * N * M * b.a },
      matmulKernel(N, M, E, b),
    ];
  },

  tensors: (config, v) => {
    const E = config.hiddenSize;
    return [
      { role: 'norm', name: 'post_attention_layernorm.weight', shape: [E] },
      { role: 'gate', name: 'mlp.gate_proj.weight', shape: [v.intermediate, E] },
      { role: 'up', name: 'mlp.up_proj.weight', shape: [v.intermediate, E] },
      { role: 'down', name: 'mlp.down_proj.weight', shape: [E, v.intermediate] },
    ];
  },

  /** ffn_mult where DeciLM's mapping can express the width; else the exact width, as puzzletron's newer config and vLLM read it. */
  toDeci: (config, v) => {
    const mult = intermediateToFfnMult(v.intermediate, config.hiddenSize);
    return { no_op: false, replace_with_linear: false, ...(mult !== null ? { ffn_mult: mult } : { intermediate_size: v.intermediate }) };
  },
  fromDeci: (entry, config, where) => {
    if (entry.no_op === true || entry.replace_with_linear === true) return null;
    const size = entry.intermediate_size;
    if (size !== undefined && size !== null) {
      if (typeof size !== 'number' || !Number.isInteger(size) || size < 1) fail(`${where('ffn.intermediate_size')} is ${JSON.stringify(size)}; expected a positive integer`);
      return { kind: 'swiglu', intermediate: size };
    }
    const mult = entry.ffn_mult;
    if (typeof mult !== 'number' || !(mult > 0)) fail(`${where('ffn.ffn_mult')} is ${JSON.stringify(mult)}; expected a positive number (or ffn.intermediate_size)`);
    return { kind: 'swiglu', intermediate: ffnMultToIntermediate(mult, config.hiddenSize) };
  },

  spaceKeys: ['widths'],
  fromSpace: (section, config, at) => {
    const w = section.object('widths');
    if (w === null) return [];
    w.onlyKeys(['values', 'fractions', 'roundTo']);
    const M = config.intermediateSize;
    const roundTo = w.has('roundTo') ? w.positiveInt('roundTo') : 1;
    const out: SwiGlu[] = [];
    const add = (width: number, sub: string, source: string) => {
      if (!Number.isInteger(width) || width < 1 || width > M) {
        fail(`${at.file}: field "${at.field}.widths.${sub}" (layer ${at.layer}): ${source} gives FFN width ${width}; expected an integer from 1 to the parent's ${M}`);
      }
      out.push({ kind: 'swiglu', intermediate: width });
    };
    if (w.has('values')) for (const v of w.positiveNumbers('values', 'FFN widths')) add(v, 'values', `${v}`);
    if (w.has('fractions')) {
      for (const f of w.positiveNumbers('fractions', 'fractions of the parent\'s FFN width')) {
        // The parent's own width stays exact even when it is not a multiple of roundTo.
        const width = f === 1 ? M : Math.round((f * M) / roundTo) * roundTo;
        add(width, 'fractions', `fraction ${f} of ${M}${roundTo > 1 ? ` rounded to a multiple of ${roundTo}` : ''}`);
      }
    }
    return out;
  },

  emit: (ctx, w, x) => {
    const { g, layer: i, tap } = ctx;
    const t = w.tensors;
    const p = `l${i}_ffn`;
    const M = w.variant.intermediate;
    const n = normOf(ctx, x, t.norm, `${p}_norm`);
    const gateUp = g.node('MatMul', [n, ctx.transposed([{ role: 'gate', tensor: t.gate }, { role: 'up', tensor: t.up }], `${p}_gate_up_t`)], {}, `${p}_gate_up`);
    const [gate, up] = g.nodeN('Split', [gateUp, g.int64([M, M])], 2, { axis: -1 }, `${p}_gu`);
    const silu = g.node('Mul', [gate, g.node('Sigmoid', [gate], {}, `${p}_sig`)], {}, `${p}_silu`);
    const hidden = g.node('Mul', [silu, up], {}, `${p}_act`);
    tap('ffn.activation', hidden, ['batch', 'seq', M]);
    return g.node('MatMul', [hidden, ctx.transposed([{ role: 'down', tensor: t.down }], `${p}_down_t`)], {}, `${p}_out`);
  },

  reference: (config, w, x) => {
    const t = w.tensors;
    return x.map((row) => {
      const n = rmsNormRow(row, t.norm, config.rmsNormEps);
      const gate = matVec(t.gate, n);
      const up = matVec(t.up, n);
      const act = gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
      return matVec(t.down, act);
    });
  },

  derive: async (ctx, v) => {
    const parent = asSwiGlu(ctx.parent, ctx.layer);
    const M = parent.variant.intermediate;
    if (v.intermediate === M) return { init: parent, fitted: parent, ridge: undefined };
    const act = await ctx.parentTap('ffn.activation');
    const tokens = act.length / M;
    const channels = topChannels(channelImportance(parent, ctx.options.ranking, { data: act, tokens }), v.intermediate);
    const init = sliceChannels(parent, channels);
    // The kept channels' activations are the parent's own: refit W_down on them exactly.
    const fit = await fitLinear(ctx.ops, selectColumns(matrix(act, M), channels), matrix(ctx.output, ctx.config.hiddenSize), init.tensors.down, ctx.options.ridgeGrid);
    return { init, fitted: withTensors(init, { down: fit.weight }), ridge: fit.ridge };
  },

  colour: (config, v) => `hsl(142, 60%, ${Math.round(82 - 47 * (v.intermediate / config.intermediateSize))}%)`,
};

export function asSwiGlu(w: SubBlockWeights, layer: number): SubBlockWeights<SwiGlu> {
  if (w.variant.kind !== 'swiglu') throw new Error(`layer ${layer} of the parent has no SwiGLU FFN to derive candidates from`);
  return w as SubBlockWeights<SwiGlu>;
}

/**
 * Importance of each intermediate channel. 'activation' (Minitron/Puzzle): mean |silu(gate)·up| over
 * calibration tokens × ‖column of W_down‖; 'magnitude': ‖row of W_gate‖·‖row of W_up‖·‖column of W_down‖.
 */
export function channelImportance(w: SubBlockWeights<SwiGlu>, ranking: ChannelRanking, activations?: { data: Float32Array; tokens: number }): Float64Array {
  const { gate, up, down } = w.tensors;
  const M = gate.shape[0];
  const E = gate.shape[1];
  const downNorm = new Float64Array(M);
  for (let o = 0; o < E; o++) for (let j = 0; j < M; j++) downNorm[j] += down.data[o * M + j] ** 2;
  const score = new Float64Array(M);
  if (ranking === 'activation') {
    if (activations === undefined) throw new Error('activation ranking needs calibration activations');
    const { data, tokens } = activations;
    for (let t = 0; t < tokens; t++) for (let j = 0; j < M; j++) score[j] += Math.abs(data[t * M + j]);
    for (let j = 0; j < M; j++) score[j] = (score[j] / tokens) * Math.sqrt(downNorm[j]);
  } else {
    const rowNorm = (t: Tensor, j: number) => Math.sqrt(rows(t, j, j + 1).reduce((s, v) => s + v * v, 0));
    for (let j = 0; j < M; j++) score[j] = rowNorm(gate, j) * rowNorm(up, j) * Math.sqrt(downNorm[j]);
  }
  return score;
}

/** The `keep` most important channels, in their original order (ties broken by index, for determinism). */
export function topChannels(importance: Float64Array, keep: number): number[] {
  const order = Array.from(importance.keys()).sort((a, b) => importance[b] - importance[a] || a - b);
  return order.slice(0, keep).sort((a, b) => a - b);
}

/** The FFN restricted to some intermediate channels: their gate/up rows and down columns. */
export function sliceChannels(w: SubBlockWeights<SwiGlu>, channels: readonly number[]): SubBlockWeights<SwiGlu> {
  const { norm, gate, up, down } = w.tensors;
  const M = gate.shape[0];
  const E = gate.shape[1];
  const m = channels.length;
  const g = new Float32Array(m * E);
  const u = new Float32Array(m * E);
  const d = new Float32Array(E * m);
  channels.forEach((j, c) => {
    g.set(rows(gate, j, j + 1), c * E);
    u.set(rows(up, j, j + 1), c * E);
    for (let o = 0; o < E; o++) d[o * m + c] = down.data[o * M + j];
  });
  return { variant: { kind: 'swiglu', intermediate: m }, tensors: { norm, gate: { data: g, shape: [m, E] }, up: { data: u, shape: [m, E] }, down: { data: d, shape: [E, m] } } };
}
