/**
 * Ridge least squares, the closed-form refit of local distillation: W = argmin ‖X W − Y‖² + λ‖W‖²,
 * solved from the Gram matrix G = XᵀX and cross term C = XᵀY as (G + λI) W = C by Cholesky, in float64.
 */

/** In-place Cholesky factorisation of a symmetric positive-definite n×n matrix (lower triangle kept). */
export function cholesky(a: Float64Array, n: number): Float64Array {
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    for (let k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) throw new Error(`matrix is not positive definite (pivot ${j}: ${d})`);
    const ljj = Math.sqrt(d);
    a[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / ljj;
    }
  }
  return a;
}

/** Solves L Lᵀ X = B for X (n×m), given the Cholesky factor L (lower triangle of `l`); rows of X are updated whole, for locality. */
export function choleskySolve(l: Float64Array, n: number, b: Float64Array, m: number): Float64Array {
  const x = Float64Array.from(b);
  for (let i = 0; i < n; i++) {
    const row = x.subarray(i * m, (i + 1) * m);
    for (let k = 0; k < i; k++) {
      const f = l[i * n + k];
      if (f === 0) continue;
      const prev = x.subarray(k * m, (k + 1) * m);
      for (let c = 0; c < m; c++) row[c] -= f * prev[c];
    }
    const d = l[i * n + i];
    for (let c = 0; c < m; c++) row[c] /= d;
  }
  for (let i = n - 1; i >= 0; i--) {
    const row = x.subarray(i * m, (i + 1) * m);
    for (let k = i + 1; k < n; k++) {
      const f = l[k * n + i];
      if (f === 0) continue;
      const next = x.subarray(k * m, (k + 1) * m);
      for (let c = 0; c < m; c++) row[c] -= f * next[c];
    }
    const d = l[i * n + i];
    for (let c = 0; c < m; c++) row[c] /= d;
  }
  return x;
}

/** L⁻¹ of a lower-triangular L (the lower triangle of `l`), by forward substitution on whole rows. */
export function lowerInverse(l: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const row = x.subarray(i * n, i * n + i + 1);
    row[i] = 1;
    for (let k = 0; k < i; k++) {
      const f = l[i * n + k];
      if (f === 0) continue;
      const prev = x.subarray(k * n, k * n + k + 1);
      for (let c = 0; c <= k; c++) row[c] -= f * prev[c];
    }
    const d = l[i * n + i];
    for (let c = 0; c <= i; c++) row[c] /= d;
  }
  return x;
}

/**
 * G + λI with λ = `relativeLambda` × trace(G) / `per` (plus a hair, so a zero G stays factorable): by default the
 * mean diagonal of G; a dual system's kernel XXᵀ passes the primal's k, since trace(XXᵀ) = trace(XᵀX).
 */
export function regularised(gram: ArrayLike<number>, k: number, relativeLambda: number, per = k): Float64Array {
  let trace = 0;
  for (let i = 0; i < k; i++) trace += gram[i * k + i];
  const lambda = relativeLambda * (trace / per) + 1e-12;
  const a = Float64Array.from(gram);
  for (let i = 0; i < k; i++) a[i * k + i] += lambda;
  return a;
}

/**
 * The ridge solution W (k×m) from G = XᵀX (k×k) and C = XᵀY (k×m). λ is `relativeLambda` times the mean
 * diagonal of G, so the regularisation is scale-free; it keeps G + λI well conditioned when inputs are
 * correlated or fewer than k.
 */
export function solveRidge(gram: ArrayLike<number>, cross: ArrayLike<number>, k: number, m: number, relativeLambda: number): Float64Array {
  return choleskySolve(cholesky(regularised(gram, k, relativeLambda), k), k, Float64Array.from(cross), m);
}
