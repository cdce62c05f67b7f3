import type { Tensor } from '../util/tensor.js';

/**
 * Stacks nn.Linear weights ([out, in] each, same `in`) side by side and transposes them into one
 * [in, Σout] matrix, the layout MatMul wants, optionally scaling each input's rows (`scales[i]`).
 * Fusing Q/K/V (or gate/up) this way turns several small GEMMs into one larger, more efficient one.
 */
export function transposeConcat(mats: readonly Tensor[], scales: readonly number[] = []): Float32Array {
  const inDim = mats[0].shape[1];
  const totalOut = mats.reduce((s, m) => s + m.shape[0], 0);
  const out = new Float32Array(inDim * totalOut);
  let col = 0;
  mats.forEach((m, mi) => {
    if (m.shape[1] !== inDim) throw new Error(`cannot fuse: input dims ${m.shape[1]} vs ${inDim}`);
    const rows = m.shape[0];
    const s = scales[mi] ?? 1;
    const src = m.data;
    // Blocked so that both the read and the write stay within cache lines.
    const B = 32;
    for (let r0 = 0; r0 < rows; r0 += B) {
      const r1 = Math.min(rows, r0 + B);
      for (let c0 = 0; c0 < inDim; c0 += B) {
        const c1 = Math.min(inDim, c0 + B);
        for (let r = r0; r < r1; r++) {
          const srcRow = r * inDim;
          const dstCol = col + r;
          for (let c = c0; c < c1; c++) out[c * totalOut + dstCol] = src[srcRow + c] * s;
        }
      }
    }
    col += rows;
  });
  return out;
}
