import { solveRidge } from '../linalg/ridge.js';
import type { Matrix, MatrixOps } from '../onnx/matmul.js';
import type { Tensor } from '../util/tensor.js';

/**
 * The closed-form least-squares refit of a linear map: the W (nn.Linear layout [outputs, inputs]) that
 * minimises ‖X Wᵀ − Y‖² + λ‖W‖² over calibration rows, with XᵀX and XᵀY reduced in onnxruntime.
 */
export async function ridgeRefit(ops: MatrixOps, x: Matrix, y: Matrix, relativeLambda: number): Promise<Tensor> {
  const gram = await ops.matmulTransA(x, x);
  const cross = await ops.matmulTransA(x, y);
  const wt = solveRidge(gram.data, cross.data, x.cols, y.cols, relativeLambda); // [inputs, outputs]
  const w = new Float32Array(y.cols * x.cols);
  for (let i = 0; i < x.cols; i++) for (let o = 0; o < y.cols; o++) w[o * x.cols + i] = wt[i * y.cols + o];
  return { data: w, shape: [y.cols, x.cols] };
}

/** Normalised MSE: Σ(ŷ − y)² / Σy² over every element (0 is perfect; predicting zeros gives 1). */
export function nmse(prediction: Float32Array, target: Float32Array): number {
  let err = 0;
  let norm = 0;
  for (let k = 0; k < target.length; k++) {
    const d = prediction[k] - target[k];
    err += d * d;
    norm += target[k] * target[k];
  }
  return norm === 0 ? (err === 0 ? 0 : Infinity) : err / norm;
}

/** RMSNorm of every row of x [rows, E] with weight w: the input a linear replacement sees. */
export function rmsNormRows(x: Float32Array, w: Float32Array, eps: number): Float32Array {
  const E = w.length;
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / E; r++) {
    let ss = 0;
    for (let k = 0; k < E; k++) ss += x[r * E + k] ** 2;
    const inv = 1 / Math.sqrt(ss / E + eps);
    for (let k = 0; k < E; k++) out[r * E + k] = x[r * E + k] * inv * w[k];
  }
  return out;
}

/** Columns `cols` of a [rows, n] matrix. */
export function selectColumns(m: Matrix, cols: readonly number[]): Matrix {
  const out = new Float32Array(m.rows * cols.length);
  for (let r = 0; r < m.rows; r++) for (let c = 0; c < cols.length; c++) out[r * cols.length + c] = m.data[r * m.cols + cols[c]];
  return { data: out, rows: m.rows, cols: cols.length };
}
