import { describe, expect, it } from 'vitest';
import { parentArchitecture } from '../src/arch/config.js';
import { deciSlidingWindow, ffnMultToIntermediate, fromDeciBlockConfigs, intermediateToFfnMult, toDeciBlockConfigs } from '../src/arch/decilm.js';
import type { Architecture } from '../src/arch/variant.js';
import { configOf } from './support/fixtures.js';

describe('DeciLM block_configs', () => {
  it('maps ffn_mult to the widths of real Nemotron checkpoints (hidden 8192)', () => {
    // Llama-3.3-Nemotron-Super-49B: ffn_mult 5.25 is Llama-3.1-70B's 28672; 2.625 is half of it.
    expect(ffnMultToIntermediate(5.25, 8192)).toBe(28672);
    expect(ffnMultToIntermediate(2.625, 8192)).toBe(14336);
    expect(ffnMultToIntermediate(3.28125, 8192)).toBe(17920);
    expect(intermediateToFfnMult(28672, 8192)).toBe(5.25);
    expect(intermediateToFfnMult(14336, 8192)).toBe(2.625);
  });

  it('round-trips every variant kind, falling back to intermediate_size where ffn_mult cannot say the width', () => {
    const config = configOf({ hidden: 8192, layers: 4, heads: 64, kvHeads: 8, intermediate: 28672, vocab: 10 });
    const arch: Architecture = [
      { attention: { kind: 'gqa', kvHeads: 8 }, ffn: { kind: 'swiglu', intermediate: 28672 } },
      { attention: { kind: 'gqa', kvHeads: 1 }, ffn: { kind: 'swiglu', intermediate: 3000 } },
      { attention: { kind: 'linear' }, ffn: { kind: 'linear' } },
      { attention: { kind: 'noop' }, ffn: { kind: 'noop' } },
    ];
    const blocks = toDeciBlockConfigs(config, arch);
    // Every key of NVIDIA's block_config.py, as the published configs list them (Super-49B's first block).
    const rest = { num_sink_tokens: null, sparsify: null, unshifted_sink: false, use_prefill_window_in_sink_attention: false, window_length: null };
    expect(blocks[0]).toEqual({ attention: { n_heads_in_group: 8, no_op: false, replace_with_linear: false, ...rest }, ffn: { ffn_mult: 5.25, no_op: false, replace_with_linear: false, sparsify: null } });
    expect(blocks[1].attention.n_heads_in_group).toBe(64);
    expect(blocks[1].ffn).toEqual({ ffn_mult: null, intermediate_size: 3000, no_op: false, replace_with_linear: false, sparsify: null });
    expect(blocks[2]).toEqual({ attention: { n_heads_in_group: null, no_op: false, replace_with_linear: true, ...rest }, ffn: { ffn_mult: null, no_op: false, replace_with_linear: true, sparsify: null } });
    expect(blocks[3].attention.no_op && blocks[3].ffn.no_op).toBe(true);
    expect(fromDeciBlockConfigs('c.json', config, JSON.parse(JSON.stringify(blocks)))).toEqual(arch);
  });

  it('reads a Nemotron-style entry with the extra attention fields at their defaults', () => {
    const config = configOf({ hidden: 8192, layers: 1, heads: 64, kvHeads: 8, intermediate: 28672, vocab: 10 });
    const entry = {
      attention: { n_heads_in_group: 8, no_op: false, num_sink_tokens: null, replace_with_linear: false, sparsify: null, unshifted_sink: false, use_prefill_window_in_sink_attention: false, window_length: null },
      ffn: { ffn_mult: 5.25, no_op: false, replace_with_linear: false, sparsify: null },
    };
    expect(fromDeciBlockConfigs('c.json', config, [entry])).toEqual(parentArchitecture(config));
  });

  it('names the layer and field of a bad entry', () => {
    const config = configOf({ hidden: 64, layers: 2, heads: 8, kvHeads: 4, intermediate: 172, vocab: 10 });
    const ok = { attention: { n_heads_in_group: 2 }, ffn: { ffn_mult: 2 } };
    expect(() => fromDeciBlockConfigs('c.json', config, [ok])).toThrow(/c\.json: field "block_configs" has 1 entries; num_hidden_layers is 2/);
    expect(() => fromDeciBlockConfigs('c.json', config, [ok, { attention: { n_heads_in_group: 3 }, ffn: { ffn_mult: 2 } }])).toThrow(
      /c\.json: field "block_configs\[1\]\.attention\.n_heads_in_group" is 3; expected a divisor of num_attention_heads \(8\)/,
    );
    expect(() => fromDeciBlockConfigs('c.json', config, [ok, { attention: { n_heads_in_group: 2, num_sink_tokens: 4 }, ffn: { ffn_mult: 2 } }])).toThrow(
      /block_configs\[1\]\.attention\.num_sink_tokens" is 4; Tessera supports only null\/false here/,
    );
  });

  it('reads one sliding window from the attention layers\' window_length, and refuses layers that disagree', () => {
    const windowed = (w: unknown) => ({ attention: { n_heads_in_group: 2, window_length: w }, ffn: { ffn_mult: 2 } });
    const noop = { attention: { no_op: true }, ffn: { ffn_mult: 2 } };
    expect(deciSlidingWindow('c.json', [windowed(128), noop, windowed(128)])).toBe(128);
    expect(deciSlidingWindow('c.json', [windowed(null), noop])).toBeNull();
    expect(() => deciSlidingWindow('c.json', [windowed(128), windowed(null)])).toThrow(
      /c\.json: field "block_configs\[1\]\.attention\.window_length" is null but block_configs\[0\] has 128; Tessera supports one sliding window for all layers/,
    );
    expect(() => deciSlidingWindow('c.json', [windowed(-3)])).toThrow(/block_configs\[0\]\.attention\.window_length" is -3; expected a positive integer or null/);
  });
});
