import { blockedCholesky, blockedCholeskySolve } from '../linalg/blocked.js';
import { regularised } from '../linalg/ridge.js';
import type { Matrix, MatrixOps } from '../onnx/matmul.js';
import type { Tensor } from '../util/tensor.js';

/** The result of fitting one linear map: its weights, and the ridge strength chosen (null: no fit was clearly better than the initialisation or the zero map, and the better of those was kept). */
export interface LinearFit {
  readonly weight: Tensor;
  readonly ridge: number | null;
}

/** A row-major [rows, cols] view of activations laid out token by token. */
export const matrix = (data: Float32Array, cols: number): Matrix => ({ data, rows: data.length / cols, cols });

const rowsOf = (m: Matrix, from: number, to: number): Matrix => ({ data: m.data.subarray(from * m.cols, to * m.cols), rows: to - from, cols: m.cols });

function add(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((v, k) => v + b[k]);
}

/** [inputs, outputs] ridge solution as an nn.Linear weight [outputs, inputs]. */
function toLinear(wt: Float32Array, inputs: number, outputs: number): Tensor {
  const w = new Float32Array(outputs * inputs);
  for (let i = 0; i < inputs; i++) for (let o = 0; o < outputs; o++) w[o * inputs + i] = wt[i * outputs + o];
  return { data: w, shape: [outputs, inputs] };
}

function transpose(w: Tensor): Matrix {
  const [outputs, inputs] = w.shape;
  const t = new Float32Array(inputs * outputs);
  for (let o = 0; o < outputs; o++) for (let i = 0; i < inputs; i++) t[i * outputs + o] = w.data[o * inputs + i];
  return { data: t, rows: inputs, cols: outputs };
}

/** A ridge system ready to solve for any strength: the [k, m] solution for λ = relativeLambda × trace(XᵀX) / k. */
type RidgeSystem = (relativeLambda: number) => Promise<Matrix>;

/** The primal form from G = XᵀX and C = XᵀY: (G + λI) W = C, a k×k system. */
function primalSystem(ops: MatrixOps, gram: Float32Array, cross: Matrix): RidgeSystem {
  const k = cross.rows;
  return async (relativeLambda) => blockedCholeskySolve(ops, await blockedCholesky(ops, regularised(gram, k, relativeLambda), k), k, cross);
}

/**
 * The dual form, for more inputs than rows (an FFN's thousands of kept channels on a few thousand calibration
 * tokens): W = Xᵀ (XXᵀ + λI)⁻¹ Y, a rows×rows system with the same minimiser — (XᵀX + λI)⁻¹Xᵀ = Xᵀ(XXᵀ + λI)⁻¹ —
 * at a fraction of the primal's cost and memory. trace(XXᵀ) = trace(XᵀX), so λ is the primal's.
 */
async function dualSystem(ops: MatrixOps, x: Matrix, y: Matrix): Promise<RidgeSystem> {
  const n = x.rows;
  const kernel = (await ops.matmulTransB(x, x)).data;
  return async (relativeLambda) => {
    const z = await blockedCholeskySolve(ops, await blockedCholesky(ops, regularised(kernel, n, relativeLambda, x.cols), n), n, y);
    return ops.matmulTransA(x, z);
  };
}

/**
 * The closed-form least-squares refit of a linear map y ≈ W x (W in nn.Linear layout [outputs, inputs]):
 * W = argmin ‖X Wᵀ − Y‖² + λ‖W‖², reduced in onnxruntime, in the primal form or, with more inputs than rows,
 * the dual one. The last fifth of the calibration rows is held out. The baseline is the better there of
 * `init` and the zero map (a no-op: λ → ∞); the best λ of `ridgeGrid` replaces it only when its gain on the
 * held-out rows is beyond their noise (`clearlyBetter`), and is then refit on all rows. With few rows for
 * the inputs a fit can look better on a few hundred rows by chance and be worse on new text: at the
 * SmolLM2-135M shape with 1024 calibration tokens, a fit chosen on the held-out error alone scored
 * validation NMSE 1.09–1.20 in four of thirty layers — worse than the no-op it was meant to beat.
 */
export async function fitLinear(ops: MatrixOps, x: Matrix, y: Matrix, init: Tensor, ridgeGrid: readonly number[]): Promise<LinearFit> {
  const split = Math.floor(x.rows * 0.8);
  const [xt, xh, yt, yh] = [rowsOf(x, 0, split), rowsOf(x, split, x.rows), rowsOf(y, 0, split), rowsOf(y, split, y.rows)];
  const dual = x.cols > split;
  // The primal form's Gram matrices of both parts add up to the whole's: computed once, summed for the refit.
  const primal = dual ? null : await Promise.all([ops.matmulTransA(xt, xt), ops.matmulTransA(xt, yt), ops.matmulTransA(xh, xh), ops.matmulTransA(xh, yh)]);
  const train = primal === null ? await dualSystem(ops, xt, yt) : primalSystem(ops, primal[0].data, primal[1]);
  const heldOut = async (w: Matrix) => rowErrors((await ops.matmul(xh, w)).data, yh.data, yh.cols);
  const zero = rowErrors(null, yh.data, yh.cols);
  const fromInit = await heldOut(transpose(init));
  const baseline = sum(zero) < sum(fromInit) ? { weight: { data: new Float32Array(init.data.length), shape: init.shape }, errors: zero } : { weight: init, errors: fromInit };
  let best: { ridge: number; errors: Float64Array } | null = null;
  for (const ridge of ridgeGrid) {
    const errors = await heldOut(await train(ridge));
    if (best === null || sum(errors) < sum(best.errors)) best = { ridge, errors };
  }
  if (best === null || !clearlyBetter(best.errors, baseline.errors)) return { weight: baseline.weight, ridge: null };
  const all = primal === null ? await dualSystem(ops, x, y) : primalSystem(ops, add(primal[0].data, primal[2].data), { data: add(primal[1].data, primal[3].data), rows: x.cols, cols: y.cols });
  const wt = await all(best.ridge);
  return { weight: toLinear(wt.data, x.cols, y.cols), ridge: best.ridge };
}

/** Squared error of each row of a [rows, cols] prediction (null: zeros) against the target. */
export function rowErrors(prediction: Float32Array | null, target: Float32Array, cols: number): Float64Array {
  const out = new Float64Array(target.length / cols);
  for (let r = 0; r < out.length; r++) {
    let e = 0;
    for (let k = r * cols; k < (r + 1) * cols; k++) {
      const d = (prediction === null ? 0 : prediction[k]) - target[k];
      e += d * d;
    }
    out[r] = e;
  }
  return out;
}

/**
 * Whether `candidate`'s per-row errors are lower than `baseline`'s beyond chance: the mean paired difference
 * exceeds two of its standard errors (one-sided, about 98% if the rows were independent).
 */
export function clearlyBetter(candidate: Float64Array, baseline: Float64Array): boolean {
  const n = candidate.length;
  if (n < 2) return false;
  const d = candidate.map((c, r) => baseline[r] - c);
  const mean = sum(d) / n;
  const variance = d.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1);
  return mean > 2 * Math.sqrt(variance / n);
}

const sum = (xs: Float64Array) => xs.reduce((a, b) => a + b, 0);

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
