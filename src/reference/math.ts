import type { Tensor } from '../util/tensor.js';

/**
 * The plain-TypeScript building blocks of the reference forward pass, written straight from the equations
 * (float64 throughout, so finite differences of it are exact to many digits). Slow and obvious on purpose: they are the independent check on the graphs.
 */

export function add(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v + b[i]);
}

export function rmsNorm(x: Float64Array, w: Tensor, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w.data[i]);
}

/** y = W x for an nn.Linear weight W of shape [out, in]. */
export function matVec(w: Tensor, x: Float64Array): Float64Array {
  const [out, inDim] = w.shape;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < inDim; i++) s += w.data[o * inDim + i] * x[i];
    y[o] = s;
  }
  return y;
}

/** HF rotate-half RoPE of one head vector at position `pos`. */
export function applyRope(head: Float64Array, pos: number, invFreq: Float32Array): Float64Array {
  const half = head.length / 2;
  const out = new Float64Array(head.length);
  for (let i = 0; i < half; i++) {
    const angle = Math.fround(pos * invFreq[i]);
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    out[i] = head[i] * c - head[i + half] * s;
    out[i + half] = head[i + half] * c + head[i] * s;
  }
  return out;
}
