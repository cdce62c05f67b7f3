import { describe, expect, it } from 'vitest';
import { RUNTIME } from './support/fixtures.js';
import { clearlyBetter, fitLinear } from '../src/bld/fit.js';
import { solveRidge } from '../src/linalg/ridge.js';
import { MatrixOps } from '../src/onnx/matmul.js';
import { Rng } from '../src/util/rng.js';

/** Gaussian elimination with partial pivoting: an independent solver for small systems. */
function gaussSolve(a: number[][], b: number[][]): number[][] {
  const n = a.length;
  const m = b[0].length;
  const A = a.map((r, i) => [...r, ...b[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(A[r][c]) > Math.abs(A[p][c])) p = r;
    [A[c], A[p]] = [A[p], A[c]];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = A[r][c] / A[c][c];
      for (let k = c; k < n + m; k++) A[r][k] -= f * A[c][k];
    }
  }
  return A.map((row, i) => row.slice(n).map((v) => v / A[i][i]));
}

function problem(seed: number, rows: number, k: number, m: number) {
  const rng = new Rng(seed);
  const X = Array.from({ length: rows }, () => Array.from({ length: k }, () => rng.normal()));
  const Y = Array.from({ length: rows }, () => Array.from({ length: m }, () => rng.normal()));
  const gram = new Float64Array(k * k);
  const cross = new Float64Array(k * m);
  for (const [r, x] of X.entries()) {
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) gram[i * k + j] += x[i] * x[j];
      for (let j = 0; j < m; j++) cross[i * m + j] += x[i] * Y[r][j];
    }
  }
  return { X, Y, gram, cross };
}

describe('ridge least squares', () => {
  it('matches Gaussian elimination on (XᵀX + λI) W = XᵀY', () => {
    const k = 6;
    const m = 3;
    const { gram, cross } = problem(1, 40, k, m);
    const w = solveRidge(gram, cross, k, m, 1e-3);
    let trace = 0;
    for (let i = 0; i < k; i++) trace += gram[i * k + i];
    const lambda = 1e-3 * (trace / k) + 1e-12;
    const A = Array.from({ length: k }, (_, i) => Array.from({ length: k }, (_, j) => gram[i * k + j] + (i === j ? lambda : 0)));
    const B = Array.from({ length: k }, (_, i) => Array.from({ length: m }, (_, j) => cross[i * m + j]));
    const expected = gaussSolve(A, B);
    for (let i = 0; i < k; i++) for (let j = 0; j < m; j++) expect(w[i * m + j]).toBeCloseTo(expected[i][j], 10);
  });

  it('is a minimum of the squared error: the gradient vanishes and every nudge costs more', () => {
    const k = 5;
    const m = 2;
    const { X, Y, gram, cross } = problem(2, 30, k, m);
    const w = solveRidge(gram, cross, k, m, 0);
    const loss = (W: Float64Array) => X.reduce((s, x, r) => s + Y[r].reduce((t, y, j) => t + (x.reduce((a, xi, i) => a + xi * W[i * m + j], 0) - y) ** 2, 0), 0);
    const base = loss(w);
    const rng = new Rng(3);
    for (let trial = 0; trial < 20; trial++) {
      const nudged = w.map((v) => v + 1e-3 * rng.normal());
      expect(loss(nudged)).toBeGreaterThan(base);
    }
    // Gradient 2(GW − C) is zero at the optimum.
    for (let i = 0; i < k; i++) for (let j = 0; j < m; j++) {
      let g = -cross[i * m + j];
      for (let l = 0; l < k; l++) g += gram[i * k + l] * w[l * m + j];
      expect(Math.abs(g)).toBeLessThan(1e-9);
    }
  });
});

describe('fitting a linear map with a held-out choice of ridge', () => {
  const rows = 400;
  const k = 8;
  const m = 3;
  const rng = new Rng(4);
  const x = { data: rng.normalArray(rows * k), rows, cols: k };
  const truth = { data: rng.normalArray(m * k), shape: [m, k] };
  const y = new Float32Array(rows * m);
  for (let r = 0; r < rows; r++) for (let o = 0; o < m; o++) {
    let s = 0;
    for (let i = 0; i < k; i++) s += x.data[r * k + i] * truth.data[o * k + i];
    y[r * m + o] = s + 0.01 * rng.normal();
  }

  it('recovers the generating map from a poor initialisation', async () => {
    const ops = await MatrixOps.create(RUNTIME);
    const fit = await fitLinear(ops, x, { data: y, rows, cols: m }, { data: new Float32Array(m * k), shape: [m, k] }, [1e-3, 1e-1]);
    expect(fit.ridge).toBe(1e-3);
    expect(fit.weight.shape).toEqual([m, k]);
    for (let j = 0; j < m * k; j++) expect(fit.weight.data[j]).toBeCloseTo(truth.data[j], 2);
  });

  it('keeps an initialisation that no ridge solution beats on held-out rows', async () => {
    const ops = await MatrixOps.create(RUNTIME);
    const exact = { data: new Float32Array(rows * m), rows, cols: m };
    for (let r = 0; r < rows; r++) for (let o = 0; o < m; o++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += x.data[r * k + i] * truth.data[o * k + i];
      exact.data[r * m + o] = s;
    }
    const fit = await fitLinear(ops, x, exact, truth, [1e-1, 1]);
    expect(fit.ridge).toBeNull();
    expect(fit.weight).toBe(truth);
  });
});

describe('a fit must beat its baseline beyond chance', () => {
  it('keeps the zero map on targets that no linear map predicts, whatever the held-out rows happen to favour', async () => {
    const ops = await MatrixOps.create(RUNTIME);
    const [rows, k, m] = [200, 24, 8];
    const chosen: number[] = [];
    for (let seed = 0; seed < 30; seed++) {
      const { X, Y } = problem(100 + seed, rows, k, m);
      const fit = await fitLinear(ops, { data: Float32Array.from(X.flat()), rows, cols: k }, { data: Float32Array.from(Y.flat()), rows, cols: m }, { data: new Float32Array(m * k), shape: [m, k] }, [1e-1, 10]);
      if (fit.ridge !== null) chosen.push(seed);
      else expect(fit.weight.data.every((v) => v === 0)).toBe(true);
    }
    // Independent noise: no fit predicts new rows better than zeros. A strongly shrunk fit is near zero and wins on
    // the held-out rows about half the time by chance; beyond two standard errors, rarely.
    expect(chosen.length).toBeLessThanOrEqual(2);
  });

  it('prefers the zero map to an initialisation that is worse than it', async () => {
    const ops = await MatrixOps.create(RUNTIME);
    const [rows, k, m] = [70, 6, 3];
    const { X, Y } = problem(7, rows, k, m);
    const bad = { data: Float32Array.from({ length: m * k }, () => 3), shape: [m, k] };
    const fit = await fitLinear(ops, { data: Float32Array.from(X.flat()), rows, cols: k }, { data: Float32Array.from(Y.flat()), rows, cols: m }, bad, [1e-1]);
    expect(fit.ridge).toBeNull();
    expect(fit.weight.data.every((v) => v === 0)).toBe(true);
  });

  it('clearlyBetter: a paired gain beyond two standard errors', () => {
    const base = Float64Array.from([1, 1, 1, 1, 1, 1, 1, 1]);
    expect(clearlyBetter(Float64Array.from([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]), base)).toBe(true);
    // Mean gain 0.05 with a spread of ±1: not distinguishable from chance.
    expect(clearlyBetter(Float64Array.from([0, 2, 0, 2, 0, 2, 0, 1.6]), base)).toBe(false);
    expect(clearlyBetter(base, base)).toBe(false);
  });
});

describe('fitting with more inputs than calibration rows (the dual form)', () => {
  it('gives the primal float64 ridge solution on all rows, for the strength chosen on held-out rows', async () => {
    const [rows, k, m] = [60, 90, 4];
    const { X, Y, gram, cross } = problem(21, rows, k, m);
    // Y with a linear part, so that a fit beats the zero initialisation on held-out rows.
    const rng = new Rng(22);
    const truth = Array.from({ length: k * m }, () => rng.normal());
    for (const [r, x] of X.entries()) for (let j = 0; j < m; j++) Y[r][j] = 0.1 * Y[r][j] + x.reduce((a, xi, i) => a + xi * truth[i * m + j], 0);
    cross.fill(0);
    for (const [r, x] of X.entries()) for (let i = 0; i < k; i++) for (let j = 0; j < m; j++) cross[i * m + j] += x[i] * Y[r][j];
    const ops = await MatrixOps.create(RUNTIME);
    const fit = await fitLinear(ops, { data: Float32Array.from(X.flat()), rows, cols: k }, { data: Float32Array.from(Y.flat()), rows, cols: m }, { data: new Float32Array(m * k), shape: [m, k] }, [1e-2]);
    expect(fit.ridge).toBe(1e-2);
    const reference = solveRidge(gram, cross, k, m, 1e-2);
    let err = 0;
    let norm = 0;
    for (let i = 0; i < k; i++) for (let j = 0; j < m; j++) {
      err += (fit.weight.data[j * k + i] - reference[i * m + j]) ** 2;
      norm += reference[i * m + j] ** 2;
    }
    expect(Math.sqrt(err / norm)).toBeLessThan(1e-4);
  });
});

describe('blocked Cholesky with onnxruntime products', () => {
  it('solves (G + λI) W = C like the plain float64 solver, across block boundaries', async () => {
    const { blockedCholesky, blockedCholeskySolve } = await import('../src/linalg/blocked.js');
    const { regularised } = await import('../src/linalg/ridge.js');
    const ops = await MatrixOps.create(RUNTIME);
    const k = 300; // three blocks of 128, the last partial
    const m = 7;
    const { gram, cross } = problem(11, 400, k, m);
    const reference = solveRidge(gram, cross, k, m, 1e-2);
    const l = await blockedCholesky(ops, regularised(gram, k, 1e-2), k);
    const w = await blockedCholeskySolve(ops, l, k, { data: Float32Array.from(cross), rows: k, cols: m });
    let err = 0;
    let norm = 0;
    for (let i = 0; i < k * m; i++) {
      err += (w.data[i] - reference[i]) ** 2;
      norm += reference[i] ** 2;
    }
    expect(Math.sqrt(err / norm)).toBeLessThan(1e-4);
  });
});
