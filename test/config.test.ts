import { describe, expect, it } from 'vitest';
import { ropeInverseFrequencies } from '../src/arch/rope.js';
import { parseModelConfig } from '../src/model/config.js';
import { llamaConfigJson } from '../src/model/random.js';

const base = llamaConfigJson({ hidden: 64, layers: 2, heads: 8, kvHeads: 4, intermediate: 172, vocab: 32 });
const parse = (overrides: Record<string, unknown>) => parseModelConfig('m/config.json', { ...base, ...overrides });

describe('config.json', () => {
  it('reads the Llama fields', () => {
    const c = parse({ head_dim: undefined, tie_word_embeddings: false, eos_token_id: [2, 7] });
    expect(c).toMatchObject({ hiddenSize: 64, numLayers: 2, numHeads: 8, numKvHeads: 4, headDim: 8, intermediateSize: 172, vocabSize: 32, tieEmbeddings: false, eosTokenIds: [2, 7], slidingWindow: null });
  });

  it('accepts Mistral with its sliding window', () => {
    const c = parse({ architectures: ['MistralForCausalLM'], sliding_window: 4096 });
    expect(c.slidingWindow).toBe(4096);
  });

  it('reads Qwen2\'s q/k/v biases and Qwen3\'s per-head q/k norms with its own head_dim, and refuses Qwen\'s per-layer sliding window', () => {
    expect(parse({ architectures: ['Qwen2ForCausalLM'] })).toMatchObject({ qkvBias: true, qkNorm: false, slidingWindow: null });
    expect(parse({ architectures: ['Qwen3ForCausalLM'], head_dim: 16 })).toMatchObject({ qkvBias: false, qkNorm: true, headDim: 16 });
    expect(parse({})).toMatchObject({ qkvBias: false, qkNorm: false });
    expect(() => parse({ architectures: ['Qwen2ForCausalLM'], use_sliding_window: true, sliding_window: 4096 })).toThrow(
      /m\/config\.json: field "use_sliding_window" is true; expected false \(sliding-window attention in some layers only is not supported\)/,
    );
  });

  it('names an unsupported architecture', () => {
    expect(() => parse({ architectures: ['GPT2LMHeadModel'] })).toThrow(
      /m\/config\.json: field "architectures" is \["GPT2LMHeadModel"\]; expected one of LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, DeciLMForCausalLM/,
    );
  });

  it('names a missing or malformed field', () => {
    expect(() => parse({ hidden_size: undefined })).toThrow(/m\/config\.json: field "hidden_size" is missing; expected a positive integer/);
    expect(() => parse({ num_key_value_heads: 3 })).toThrow(/field "num_key_value_heads" is 3; expected a divisor of num_attention_heads \(8\)/);
    expect(() => parse({ attention_bias: true })).toThrow(/field "attention_bias" is true; expected false/);
  });

  it('reads llama3 rope_scaling and refuses unknown kinds', () => {
    const c = parse({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
    expect(c.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
    expect(() => parse({ rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(/field "rope_scaling.rope_type" is "yarn"/);
  });
});

describe('RoPE inverse frequencies', () => {
  it('are theta^(-2i/d) without scaling', () => {
    const inv = ropeInverseFrequencies({ headDim: 8, ropeTheta: 10000, ropeScaling: null });
    expect(Array.from(inv)).toEqual([1, 0.1, 0.01, 0.001].map(Math.fround));
  });

  it('divide by the factor under linear scaling', () => {
    const inv = ropeInverseFrequencies({ headDim: 4, ropeTheta: 100, ropeScaling: { type: 'linear', factor: 2 } });
    expect(Array.from(inv)).toEqual([0.5, 0.05].map(Math.fround));
  });

  it('follow the three llama3 bands', () => {
    // theta = 10^4, head dim 8: frequencies 1, 0.1, 0.01, 0.001 → wavelengths 2π, 20π, 200π, 2000π.
    // With original context 1000, low factor 1, high factor 4: high-frequency wavelengths < 250 stay,
    // low-frequency ones > 1000 are divided by 8, and 200π ≈ 628 lies in between.
    const s = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 1000 } as const;
    const inv = ropeInverseFrequencies({ headDim: 8, ropeTheta: 10000, ropeScaling: s });
    const smooth = (1000 / (200 * Math.PI) - 1) / (4 - 1);
    const medium = (1 - smooth) * (0.01 / 8) + smooth * 0.01;
    expect(inv[0]).toBe(Math.fround(1));
    expect(inv[1]).toBe(Math.fround(0.1));
    expect(inv[2]).toBeCloseTo(medium, 9);
    expect(inv[3]).toBe(Math.fround(0.001 / 8));
  });
});
