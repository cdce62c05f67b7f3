import { describe, expect, it } from 'vitest';
import { parentArchitecture } from '../src/arch/config.js';
import { attentionFlops, ffnFlops, forwardFlops, lmHeadFlops } from '../src/arch/flops.js';
import { attentionParams, ffnParams, modelKvCacheElementsPerToken, modelParams } from '../src/arch/params.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { configOf, modelDir } from './support/fixtures.js';

describe('parameter counts', () => {
  it('match the shared models\' published totals', () => {
    for (const [name, total] of [['stories260K', 260_032], ['babyllama-tok105-1M', 936_448]] as const) {
      const ck = loadCheckpoint(modelDir(name));
      expect(modelParams(ck.config, ck.architecture)).toBe(total);
    }
  });

  it('equal the element count of the loaded tensors, per sub-block', () => {
    const ck = loadCheckpoint(modelDir('stories260K'));
    const layer = ck.weights.layers[0];
    const count = (...ts: { data: Float32Array }[]) => ts.reduce((s, t) => s + t.data.length, 0);
    const a = layer.attention.tensors;
    const f = layer.ffn.tensors;
    expect(attentionParams(ck.config, ck.architecture[0].attention)).toBe(count(a.norm, a.q, a.k, a.v, a.o));
    expect(ffnParams(ck.config, ck.architecture[0].ffn)).toBe(count(f.norm, f.gate, f.up, f.down));
  });

  it('give SmolLM2-135M its 134.5M parameters and 30 × 2 × 3 × 64 KV elements per token', () => {
    const c = configOf({ hidden: 576, layers: 30, heads: 9, kvHeads: 3, intermediate: 1536, vocab: 49152 });
    expect(modelParams(c, parentArchitecture(c))).toBe(134_515_008);
    expect(modelKvCacheElementsPerToken(c, parentArchitecture(c))).toBe(30 * 2 * 3 * 64);
  });
});

describe('FLOP counts', () => {
  // hidden 64, 8 heads of 8, 2 sequences of 10 tokens (N = 20).
  const c = configOf({ hidden: 64, layers: 1, heads: 8, kvHeads: 4, intermediate: 100, vocab: 50 });
  it('count each matmul by hand', () => {
    // q 64→64, k and v 64→16 each... with 2 KV heads: k, v are 64→16; o 64→64; scores and mix 2·2·(2·8·10·10·8).
    expect(attentionFlops(c, { kind: 'gqa', kvHeads: 2 }, 2, 10)).toBe(2 * 20 * 64 * (64 + 16 + 16) + 2 * 20 * 64 * 64 + 2 * 2 * (2 * 8 * 10 * 10 * 8));
    expect(attentionFlops(c, { kind: 'linear' }, 2, 10)).toBe(2 * 20 * 64 * 64);
    expect(ffnFlops(c, { kind: 'swiglu', intermediate: 100 }, 2, 10)).toBe(2 * 20 * 64 * 300);
    expect(ffnFlops(c, { kind: 'noop' }, 2, 10)).toBe(0);
    expect(lmHeadFlops(c, 2, 10)).toBe(2 * 20 * 64 * 50);
    expect(forwardFlops(c, parentArchitecture(c), 2, 10)).toBe(
      attentionFlops(c, { kind: 'gqa', kvHeads: 4 }, 2, 10) + ffnFlops(c, { kind: 'swiglu', intermediate: 100 }, 2, 10) + lmHeadFlops(c, 2, 10),
    );
  });
});
