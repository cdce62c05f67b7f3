import { describe, expect, it } from 'vitest';
import { asGqa, meanPoolKvHeads } from '../src/arch/variants/gqa.js';
import { linearAttentionInit } from '../src/arch/variants/linear.js';
import { asSwiGlu, channelImportance, sliceChannels, topChannels } from '../src/arch/variants/swiglu.js';
import { randomWeights } from '../src/model/random.js';
import { parentArchitecture } from '../src/arch/config.js';
import { Rng } from '../src/util/rng.js';
import { MatrixOps } from '../src/onnx/matmul.js';
import { configOf, RUNTIME } from './support/fixtures.js';

const config = configOf({ hidden: 6, layers: 1, heads: 4, kvHeads: 2, headDim: 2, intermediate: 5, vocab: 3 });
const layer = randomWeights(config, parentArchitecture(config), new Rng(1)).layers[0];
const attnWeights = asGqa(layer.attention, 0);
const ffnWeights = asSwiGlu(layer.ffn, 0);
const attn = attnWeights.tensors;
const ffn = ffnWeights.tensors;

describe('candidate initialisation', () => {
  it('mean-pools consecutive K/V heads', () => {
    const pooled = meanPoolKvHeads(config, attnWeights, 1).tensors;
    expect(pooled.k.shape).toEqual([2, 6]);
    for (let k = 0; k < 12; k++) expect(pooled.k.data[k]).toBeCloseTo((attn.k.data[k] + attn.k.data[12 + k]) / 2, 6);
    expect(pooled.q).toBe(attn.q);
    expect(meanPoolKvHeads(config, attnWeights, 2).tensors.v.data).toEqual(attn.v.data);
  });

  it('builds the linear attention W_O·W_V with query heads paired to their K/V head', async () => {
    const W = (await linearAttentionInit(config, attnWeights, await MatrixOps.create(RUNTIME))).weight;
    // Query heads 0,1 read K/V head 0; heads 2,3 read K/V head 1 (head dim 2, hidden 6).
    const E = 6;
    for (let o = 0; o < E; o++) for (let i = 0; i < E; i++) {
      let s = 0;
      for (let h = 0; h < 4; h++) for (let d = 0; d < 2; d++) s += attn.o.data[o * 8 + h * 2 + d] * attn.v.data[(Math.floor(h / 2) * 2 + d) * E + i];
      expect(W.data[o * E + i]).toBeCloseTo(s, 5);
    }
  });

  it('ranks channels by mean |activation| × ‖down column‖ and keeps them in order', () => {
    const tokens = 3;
    const act = Float32Array.from({ length: tokens * 5 }, (_, k) => ((k % 5) - 2) * (k % 2 ? 1 : -1));
    const imp = channelImportance(ffnWeights, 'activation', { data: act, tokens });
    for (let j = 0; j < 5; j++) {
      let a = 0;
      for (let t = 0; t < tokens; t++) a += Math.abs(act[t * 5 + j]);
      let d = 0;
      for (let o = 0; o < 6; o++) d += ffn.down.data[o * 5 + j] ** 2;
      expect(imp[j]).toBeCloseTo((a / tokens) * Math.sqrt(d), 9);
    }
    expect(topChannels(Float64Array.of(0.5, 3, 1, 3, 0), 3)).toEqual([1, 2, 3]);
  });

  it('slices gate/up rows and down columns, so the kept channels compute exactly what they did', () => {
    const s = sliceChannels(ffnWeights, [1, 4]).tensors;
    expect(Array.from(s.gate.data.subarray(6, 12))).toEqual(Array.from(ffn.gate.data.subarray(24, 30)));
    expect(s.down.data[0 * 2 + 1]).toBe(ffn.down.data[0 * 5 + 4]);
    expect(sliceChannels(ffnWeights, [0, 1, 2, 3, 4]).tensors.down.data).toEqual(ffn.down.data);
  });
});
