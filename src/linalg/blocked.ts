import type { Matrix, MatrixOps } from '../onnx/matmul.js';
import { cholesky, lowerInverse } from './ridge.js';

/**
 * Blocked Cholesky factorisation and triangular solves: the small diagonal blocks in float64 JavaScript,
 * every large product in onnxruntime, so a k×k ridge system costs O(k³) GEMM flops at GEMM speed rather
 * than at the speed of JavaScript loops. (Products run in float32; the systems solved here are ridge
 * regularised, so their condition stays far from float32's limits.)
 */

const BLOCK = 128;

function sub(a: Float64Array | Float32Array, n: number, r0: number, r1: number, c0: number, c1: number): Matrix {
  const out = new Float32Array((r1 - r0) * (c1 - c0));
  for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[(r - r0) * (c1 - c0) + (c - c0)] = a[r * n + c];
  return { data: out, rows: r1 - r0, cols: c1 - c0 };
}

function transpose(m: Matrix): Matrix {
  const out = new Float32Array(m.data.length);
  for (let r = 0; r < m.rows; r++) for (let c = 0; c < m.cols; c++) out[c * m.rows + r] = m.data[r * m.cols + c];
  return { data: out, rows: m.cols, cols: m.rows };
}

/** Lower Cholesky factor of a symmetric positive-definite n×n matrix (row-major; upper triangle zero). */
export async function blockedCholesky(ops: MatrixOps, a: Float64Array, n: number): Promise<Float64Array> {
  const l = Float64Array.from(a);
  const diagonalInverses: Float64Array[] = [];
  for (let k0 = 0; k0 < n; k0 += BLOCK) {
    const k1 = Math.min(n, k0 + BLOCK);
    const b = k1 - k0;
    const block = new Float64Array(b * b);
    for (let r = 0; r < b; r++) for (let c = 0; c <= r; c++) block[r * b + c] = l[(k0 + r) * n + k0 + c];
    cholesky(block, b);
    for (let r = 0; r < b; r++) for (let c = 0; c < b; c++) l[(k0 + r) * n + k0 + c] = c <= r ? block[r * b + c] : 0;
    for (let r = k0; r < k1; r++) for (let c = k1; c < n; c++) l[r * n + c] = 0;
    diagonalInverses.push(lowerInverse(block, b));
    if (k1 === n) break;
    // Panel: L21 = A21 · L11⁻ᵀ.
    const inv = diagonalInverses[diagonalInverses.length - 1];
    const invT: Matrix = transpose({ data: Float32Array.from(inv), rows: b, cols: b });
    const panel = await ops.matmul(sub(l, n, k1, n, k0, k1), invT);
    for (let r = 0; r < panel.rows; r++) for (let c = 0; c < b; c++) l[(k1 + r) * n + k0 + c] = panel.data[r * b + c];
    // Trailing update: A22 −= L21 L21ᵀ (lower triangle is all later blocks read).
    const update = await ops.matmul(panel, transpose(panel));
    const m = n - k1;
    for (let r = 0; r < m; r++) for (let c = 0; c <= r; c++) l[(k1 + r) * n + k1 + c] -= update.data[r * m + c];
  }
  return l;
}

/** X = (L Lᵀ)⁻¹ B for B (n×m), by blocked forward then backward substitution. */
export async function blockedCholeskySolve(ops: MatrixOps, l: Float64Array, n: number, b: Matrix): Promise<Matrix> {
  const m = b.cols;
  const blocks: [number, number][] = [];
  for (let k0 = 0; k0 < n; k0 += BLOCK) blocks.push([k0, Math.min(n, k0 + BLOCK)]);
  const inverses = blocks.map(([k0, k1]) => {
    const size = k1 - k0;
    const d = new Float64Array(size * size);
    for (let r = 0; r < size; r++) for (let c = 0; c <= r; c++) d[r * size + c] = l[(k0 + r) * n + k0 + c];
    return { data: Float32Array.from(lowerInverse(d, size)), rows: size, cols: size };
  });
  const rows = (x: Float32Array, r0: number, r1: number): Matrix => ({ data: x.subarray(r0 * m, r1 * m), rows: r1 - r0, cols: m });
  // Forward: L Z = B.
  const z = new Float32Array(n * m);
  for (const [i, [k0, k1]] of blocks.entries()) {
    let rhs = rows(b.data, k0, k1).data.slice();
    if (k0 > 0) {
      const done = await ops.matmul(sub(l, n, k0, k1, 0, k0), rows(z, 0, k0));
      rhs = rhs.map((v, j) => v - done.data[j]);
    }
    z.set((await ops.matmul(inverses[i], { data: rhs, rows: k1 - k0, cols: m })).data, k0 * m);
  }
  // Backward: Lᵀ X = Z.
  const x = new Float32Array(n * m);
  for (let i = blocks.length - 1; i >= 0; i--) {
    const [k0, k1] = blocks[i];
    let rhs = rows(z, k0, k1).data.slice();
    if (k1 < n) {
      const done = await ops.matmulTransA(sub(l, n, k1, n, k0, k1), rows(x, k1, n));
      rhs = rhs.map((v, j) => v - done.data[j]);
    }
    x.set((await ops.matmulTransA(inverses[i], { data: rhs, rows: k1 - k0, cols: m })).data, k0 * m);
  }
  return { data: x, rows: n, cols: m };
}
