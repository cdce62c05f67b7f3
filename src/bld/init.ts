import type { ModelConfig } from '../arch/config.js';
import type { AttentionWeights, FfnWeights } from '../model/weights.js';
import type { Tensor } from '../util/tensor.js';

/**
 * Candidates built from the parent's weights before any fitting (Puzzle's initialisations). Pure
 * functions over weights; nn.Linear layout [out, in] throughout.
 */

type Gqa = Extract<AttentionWeights, { kind: 'gqa' }>;
type SwiGlu = Extract<FfnWeights, { kind: 'swiglu' }>;

/** Rows [from, to) of a matrix. */
function rows(t: Tensor, from: number, to: number): Float32Array {
  const cols = t.shape[1];
  return t.data.subarray(from * cols, to * cols);
}

/** Fewer K/V heads: each new head is the mean of the consecutive parent heads it replaces; queries keep all heads. */
export function meanPoolKvHeads(config: ModelConfig, w: Gqa, kvHeads: number): Gqa {
  const D = config.headDim;
  const parentKv = w.k.shape[0] / D;
  if (parentKv % kvHeads !== 0) throw new Error(`cannot pool ${parentKv} KV heads into ${kvHeads}`);
  const group = parentKv / kvHeads;
  const E = w.k.shape[1];
  const pool = (t: Tensor): Tensor => {
    const out = new Float32Array(kvHeads * D * E);
    for (let h = 0; h < kvHeads; h++) {
      for (let g = 0; g < group; g++) {
        const src = rows(t, (h * group + g) * D, (h * group + g + 1) * D);
        for (let k = 0; k < D * E; k++) out[h * D * E + k] += src[k] / group;
      }
    }
    return { data: out, shape: [kvHeads * D, E] };
  };
  return { ...w, k: pool(w.k), v: pool(w.v) };
}

/**
 * Linear replacement of attention, as if every token attended only to itself: W = W_O · W_V, with each
 * query head's slice of W_O paired with the K/V head it reads.
 */
export function linearAttentionInit(config: ModelConfig, w: Gqa): Tensor {
  const D = config.headDim;
  const H = config.numHeads;
  const K = w.v.shape[0] / D;
  const E = config.hiddenSize;
  const hd = H * D;
  const out = new Float64Array(E * E);
  for (let h = 0; h < H; h++) {
    const kv = Math.floor(h / (H / K));
    for (let d = 0; d < D; d++) {
      const vRow = rows(w.v, kv * D + d, kv * D + d + 1);
      for (let o = 0; o < E; o++) {
        const f = w.o.data[o * hd + h * D + d];
        if (f === 0) continue;
        for (let i = 0; i < E; i++) out[o * E + i] += f * vRow[i];
      }
    }
  }
  return { data: Float32Array.from(out), shape: [E, E] };
}

/** Channel ranking for FFN width pruning. */
export type ChannelRanking = 'activation' | 'magnitude';

/**
 * Importance of each intermediate channel. 'activation' (Minitron/Puzzle): mean |silu(gate)·up| over
 * calibration tokens × ‖column of W_down‖; 'magnitude': ‖row of W_gate‖·‖row of W_up‖·‖column of W_down‖.
 */
export function channelImportance(w: SwiGlu, ranking: ChannelRanking, activations?: { data: Float32Array; tokens: number }): Float64Array {
  const M = w.gate.shape[0];
  const E = w.gate.shape[1];
  const downNorm = new Float64Array(M);
  for (let o = 0; o < E; o++) for (let j = 0; j < M; j++) downNorm[j] += w.down.data[o * M + j] ** 2;
  const score = new Float64Array(M);
  if (ranking === 'activation') {
    if (activations === undefined) throw new Error('activation ranking needs calibration activations');
    const { data, tokens } = activations;
    for (let t = 0; t < tokens; t++) for (let j = 0; j < M; j++) score[j] += Math.abs(data[t * M + j]);
    for (let j = 0; j < M; j++) score[j] = (score[j] / tokens) * Math.sqrt(downNorm[j]);
  } else {
    const rowNorm = (t: Tensor, j: number) => Math.sqrt(rows(t, j, j + 1).reduce((s, v) => s + v * v, 0));
    for (let j = 0; j < M; j++) score[j] = rowNorm(w.gate, j) * rowNorm(w.up, j) * Math.sqrt(downNorm[j]);
  }
  return score;
}

/** The `keep` most important channels, in their original order (ties broken by index, for determinism). */
export function topChannels(importance: Float64Array, keep: number): number[] {
  const order = Array.from(importance.keys()).sort((a, b) => importance[b] - importance[a] || a - b);
  return order.slice(0, keep).sort((a, b) => a - b);
}

/** The FFN restricted to some intermediate channels: their gate/up rows and down columns. */
export function sliceChannels(w: SwiGlu, channels: readonly number[]): SwiGlu {
  const M = w.gate.shape[0];
  const E = w.gate.shape[1];
  const m = channels.length;
  const gate = new Float32Array(m * E);
  const up = new Float32Array(m * E);
  const down = new Float32Array(E * m);
  channels.forEach((j, c) => {
    gate.set(rows(w.gate, j, j + 1), c * E);
    up.set(rows(w.up, j, j + 1), c * E);
    for (let o = 0; o < E; o++) down[o * m + c] = w.down.data[o * M + j];
  });
  return { kind: 'swiglu', norm: w.norm, gate: { data: gate, shape: [m, E] }, up: { data: up, shape: [m, E] }, down: { data: down, shape: [E, m] } };
}
