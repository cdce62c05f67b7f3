import type { ModelConfig } from '../../arch/config.js';
import { ropeInverseFrequencies } from '../../arch/rope.js';
import type { LayerWeights, WeightSource } from '../../model/weights.js';
import type { Tensor } from '../../util/tensor.js';
import type { GgmlType, GgufTensor, GgufValue } from './format.js';
import { encodeAs } from './quant.js';

/**
 * A child as llama.cpp's `deci` architecture (Nemotron-NAS): per-layer head counts and FFN widths, where
 * n_head = 0 is a no-op attention, n_head > 0 with n_head_kv = 0 a linear attention (`attn_output` alone), and
 * n_ff = 0 a no-op FFN — as llama.cpp's converter writes them. Tensors are named and laid out as the converter
 * does: ggml dimensions innermost first (an nn.Linear [out, in] is ne [in, out], the same bytes), Q and K rows
 * permuted within each head from HuggingFace's rotate-half RoPE to ggml's interleaved pairs.
 */
export const DECI_ARCH = 'deci';

/** How the weight matrices are stored: float32, float16, bfloat16, or Q8_0 (a tensor whose rows are not a multiple of 32 falls back to float16, as llama.cpp's converter does). */
export type GgufWeights = 'F32' | 'F16' | 'BF16' | 'Q8_0';

/** Rows of a [rows, cols] matrix reordered within each head: row h·d + 2i + j ← row h·d + j·d/2 + i. */
export function permuteRope(w: Tensor, heads: number): Tensor {
  const [rows, cols] = w.shape;
  const d = rows / heads;
  const out = new Float32Array(w.data.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < d / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const from = h * d + j * (d / 2) + i;
        out.set(w.data.subarray(from * cols, (from + 1) * cols), (h * d + 2 * i + j) * cols);
      }
    }
  }
  return { data: out, shape: w.shape };
}

/** Per-dimension RoPE frequency divisors (llama.cpp's rope_freqs): the unscaled frequencies over the scaled ones. */
export function ropeFactors(config: ModelConfig): Float32Array | null {
  if (config.ropeScaling === null) return null;
  const scaled = ropeInverseFrequencies(config);
  const plain = ropeInverseFrequencies({ ...config, ropeScaling: null });
  return plain.map((p, i) => p / scaled[i]);
}

export function deciMetadata(config: ModelConfig, source: WeightSource, name: string): Map<string, GgufValue> {
  const arch = source.architecture;
  const heads = arch.map((b) => (b.attention.kind === 'noop' ? 0 : config.numHeads));
  const kvHeads = arch.map((b) => (b.attention.kind === 'gqa' ? b.attention.kvHeads : 0));
  const ffn = arch.map((b) => (b.ffn.kind === 'swiglu' ? b.ffn.intermediate : 0));
  const k = (key: string) => `${DECI_ARCH}.${key}`;
  return new Map<string, GgufValue>([
    ['general.architecture', { type: 'string', value: DECI_ARCH }],
    ['general.name', { type: 'string', value: name }],
    [k('block_count'), { type: 'u32', value: arch.length }],
    [k('context_length'), { type: 'u32', value: config.maxPositions }],
    [k('embedding_length'), { type: 'u32', value: config.hiddenSize }],
    [k('feed_forward_length'), { type: 'array', of: 'i32', value: ffn }],
    [k('attention.head_count'), { type: 'array', of: 'i32', value: heads }],
    [k('attention.head_count_kv'), { type: 'array', of: 'i32', value: kvHeads }],
    [k('attention.key_length'), { type: 'u32', value: config.headDim }],
    [k('attention.value_length'), { type: 'u32', value: config.headDim }],
    [k('attention.layer_norm_rms_epsilon'), { type: 'f32', value: config.rmsNormEps }],
    [k('rope.dimension_count'), { type: 'u32', value: config.headDim }],
    [k('rope.freq_base'), { type: 'f32', value: config.ropeTheta }],
    [k('vocab_size'), { type: 'u32', value: config.vocabSize }],
  ]);
}

/** The tensors in llama.cpp's order and names, each read from the source (a layer at a time) when written. */
export function deciTensors(config: ModelConfig, source: WeightSource, weights: GgufWeights): GgufTensor[] {
  const E = config.hiddenSize;
  let held: { i: number; layer: LayerWeights } | null = null;
  const layer = (i: number) => {
    if (held?.i !== i) held = { i, layer: source.layer(i) };
    return held.layer;
  };
  // A matrix [rows, cols] as ne [cols, rows]; Q8_0 needs cols (its rows' length) a multiple of 32.
  const weight = (name: string, shape: readonly number[], read: () => Tensor): GgufTensor => {
    const type: GgmlType = weights === 'Q8_0' && shape[shape.length - 1] % 32 !== 0 ? 'F16' : weights;
    return { name, type, dims: [...shape].reverse(), bytes: () => encodeAs(type, read(), name) };
  };
  const vector = (name: string, n: number, read: () => Tensor): GgufTensor => ({ name, type: 'F32', dims: [n], bytes: () => encodeAs('F32', read(), name) });

  const out: GgufTensor[] = [weight('token_embd.weight', [config.vocabSize, E], () => source.embed())];
  const factors = ropeFactors(config);
  if (factors !== null) out.push({ name: 'rope_freqs.weight', type: 'F32', dims: [factors.length], bytes: () => encodeAs('F32', { data: factors, shape: [factors.length] }, 'rope_freqs.weight') });
  source.architecture.forEach((block, i) => {
    const blk = (n: string) => `blk.${i}.${n}.weight`;
    const tensor = (sub: keyof LayerWeights, role: string) => () => layer(i)[sub].tensors[role];
    const a = block.attention;
    if (a.kind !== 'noop') out.push(vector(blk('attn_norm'), E, tensor('attention', 'norm')));
    if (a.kind === 'gqa') {
      const q = config.numHeads * config.headDim;
      const kv = a.kvHeads * config.headDim;
      out.push(
        weight(blk('attn_q'), [q, E], () => permuteRope(tensor('attention', 'q')(), config.numHeads)),
        weight(blk('attn_k'), [kv, E], () => permuteRope(tensor('attention', 'k')(), a.kvHeads)),
        weight(blk('attn_v'), [kv, E], tensor('attention', 'v')),
        weight(blk('attn_output'), [E, q], tensor('attention', 'o')),
      );
    } else if (a.kind === 'linear') {
      out.push(weight(blk('attn_output'), [E, E], tensor('attention', 'weight')));
    }
    const f = block.ffn;
    if (f.kind === 'swiglu') {
      out.push(
        vector(blk('ffn_norm'), E, tensor('ffn', 'norm')),
        weight(blk('ffn_gate'), [f.intermediate, E], tensor('ffn', 'gate')),
        weight(blk('ffn_up'), [f.intermediate, E], tensor('ffn', 'up')),
        weight(blk('ffn_down'), [E, f.intermediate], tensor('ffn', 'down')),
      );
    } else if (f.kind === 'linear') {
      throw new Error("llama.cpp's deci architecture has no linear FFN");
    }
  });
  out.push(vector('output_norm.weight', E, () => source.finalNorm()));
  if (!source.tiedHead) out.push(weight('output.weight', [config.vocabSize, E], () => source.lmHead()));
  return out;
}
