/**
 * AdamW (Loshchilov & Hutter), as torch.optim.AdamW computes it: decoupled weight decay, bias-corrected
 * moments. Pure arithmetic over float32 arrays in place; the moments are state a checkpoint must keep.
 */
export interface AdamWSettings {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWSettings = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

export interface AdamWState {
  /** Updates taken so far. */
  step: number;
  readonly m: Float32Array[];
  readonly v: Float32Array[];
}

export function adamWState(sizes: readonly number[]): AdamWState {
  return { step: 0, m: sizes.map((n) => new Float32Array(n)), v: sizes.map((n) => new Float32Array(n)) };
}

/** One AdamW update of every parameter with its gradient at learning rate `lr`. */
export function adamWStep(params: readonly Float32Array[], grads: readonly Float32Array[], state: AdamWState, lr: number, s: AdamWSettings = ADAMW_DEFAULTS): void {
  state.step++;
  const c1 = 1 - s.beta1 ** state.step;
  const c2 = 1 - s.beta2 ** state.step;
  const decay = 1 - lr * s.weightDecay;
  params.forEach((p, k) => {
    const g = grads[k];
    const m = state.m[k];
    const v = state.v[k];
    for (let i = 0; i < p.length; i++) {
      m[i] = s.beta1 * m[i] + (1 - s.beta1) * g[i];
      v[i] = s.beta2 * v[i] + (1 - s.beta2) * g[i] * g[i];
      p[i] = p[i] * decay - (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + s.eps);
    }
  });
}

/** Scales gradients in place so their global L2 norm is at most `maxNorm`; returns the norm before clipping. */
export function clipGradients(grads: readonly Float32Array[], maxNorm: number): number {
  let sq = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  const total = Math.sqrt(sq);
  if (total > maxNorm) {
    const f = maxNorm / (total + 1e-6);
    for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= f;
  }
  return total;
}

/** Linear warm-up to `peak` over `warmup` steps, then cosine decay to zero at `total` steps (transformers' schedule). */
export function learningRate(step: number, peak: number, warmup: number, total: number): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return peak * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}
