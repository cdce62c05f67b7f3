import type { ModelConfig } from '../arch/config.js';
import { ropeInverseFrequencies } from '../arch/rope.js';
import type { AttentionWeights, FfnWeights, ModelWeights } from '../model/weights.js';
import type { Tensor } from '../util/tensor.js';

/**
 * A slow, obvious, plain-TypeScript forward pass of one sequence, written straight from the Llama
 * equations (float64 accumulation). It exists to check the ONNX graphs against an independent
 * implementation on small inputs; nothing on a hot path uses it.
 */
export function referenceForward(config: ModelConfig, weights: ModelWeights, ids: readonly number[]): { logits: Float32Array[]; hidden: Float32Array[][] } {
  const T = ids.length;
  const E = config.hiddenSize;
  let x: Float32Array[] = ids.map((id) => weights.embed.data.slice(id * E, (id + 1) * E));
  const hidden: Float32Array[][] = [x];
  for (const layer of weights.layers) {
    const a = attention(config, layer.attention, x);
    if (a !== null) x = x.map((row, t) => add(row, a[t]));
    const f = ffn(config, layer.ffn, x);
    if (f !== null) x = x.map((row, t) => add(row, f[t]));
    hidden.push(x);
  }
  const logits: Float32Array[] = [];
  for (let t = 0; t < T; t++) logits.push(matVec(weights.lmHead, rmsNorm(x[t], weights.finalNorm, config.rmsNormEps)));
  return { logits, hidden };
}

function add(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((v, i) => v + b[i]);
}

function rmsNorm(x: Float32Array, w: Tensor, eps: number): Float32Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w.data[i]);
}

/** y = W x for an nn.Linear weight W of shape [out, in]. */
function matVec(w: Tensor, x: Float32Array): Float32Array {
  const [out, inDim] = w.shape;
  const y = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < inDim; i++) s += w.data[o * inDim + i] * x[i];
    y[o] = s;
  }
  return y;
}

/** HF rotate-half RoPE of one head vector at position `pos`. */
function applyRope(head: Float32Array, pos: number, invFreq: Float32Array): Float32Array {
  const half = head.length / 2;
  const out = new Float32Array(head.length);
  for (let i = 0; i < half; i++) {
    const angle = Math.fround(pos * invFreq[i]);
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    out[i] = head[i] * c - head[i + half] * s;
    out[i + half] = head[i + half] * c + head[i] * s;
  }
  return out;
}

function attention(config: ModelConfig, w: AttentionWeights, x: Float32Array[]): Float32Array[] | null {
  if (w.kind === 'noop') return null;
  const normed = x.map((row) => rmsNorm(row, w.norm, config.rmsNormEps));
  if (w.kind === 'linear') return normed.map((row) => matVec(w.weight, row));
  const H = config.numHeads;
  const D = config.headDim;
  const K = w.k.shape[0] / D;
  const invFreq = ropeInverseFrequencies(config);
  const head = (v: Float32Array, h: number) => v.slice(h * D, (h + 1) * D);
  const q = normed.map((row, t) => Array.from({ length: H }, (_, h) => applyRope(head(matVec(w.q, row), h), t, invFreq)));
  const k = normed.map((row, t) => Array.from({ length: K }, (_, h) => applyRope(head(matVec(w.k, row), h), t, invFreq)));
  const v = normed.map((row) => Array.from({ length: K }, (_, h) => head(matVec(w.v, row), h)));
  const window = config.slidingWindow ?? Infinity;
  return x.map((_, t) => {
    const merged = new Float32Array(H * D);
    for (let h = 0; h < H; h++) {
      const kvHead = Math.floor(h / (H / K)); // repeat_kv: query head h reads K/V head h // group
      const visible: number[] = [];
      for (let s = 0; s <= t; s++) if (t - s < window) visible.push(s);
      const scores = visible.map((s) => {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[t][h][d] * k[s][kvHead][d];
        return dot / Math.sqrt(D);
      });
      const max = Math.max(...scores);
      const exps = scores.map((sc) => Math.exp(sc - max));
      const total = exps.reduce((a, b) => a + b, 0);
      visible.forEach((s, j) => {
        for (let d = 0; d < D; d++) merged[h * D + d] += (exps[j] / total) * v[s][kvHead][d];
      });
    }
    return matVec(w.o, merged);
  });
}

function ffn(config: ModelConfig, w: FfnWeights, x: Float32Array[]): Float32Array[] | null {
  if (w.kind === 'noop') return null;
  return x.map((row) => {
    const n = rmsNorm(row, w.norm, config.rmsNormEps);
    if (w.kind === 'linear') return matVec(w.weight, n);
    const gate = matVec(w.gate, n);
    const up = matVec(w.up, n);
    const act = gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
    return matVec(w.down, act);
  });
}
