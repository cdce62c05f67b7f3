import type ort from 'onnxruntime-node';
import type { GraphBuilder } from '../onnx/graph-builder.js';
import { float32Tensor } from '../onnx/runtime.js';
import { DataType } from '../onnx/graph-builder.js';
import type { Tensor } from '../util/tensor.js';

/**
 * AdamW (Loshchilov & Hutter) as torch.optim.AdamW computes it — decoupled weight decay, bias-corrected
 * moments — after clipping the gradients to a global L2 norm, as torch.nn.utils.clip_grad_norm_ does. The
 * step runs inside the training graph, so every weight is updated by onnxruntime's vectorised kernels.
 */
export interface AdamWSettings {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWSettings = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

/** Names of the optimizer's inputs and outputs in a training graph. */
export const OPTIMIZER = {
  lr: 'optimizer.lr',
  /** 1 − β₁ᵗ and 1 − β₂ᵗ of the step being taken (bias corrections). */
  c1: 'optimizer.c1',
  c2: 'optimizer.c2',
  /** The global gradient norm before clipping. */
  gradNorm: 'grad_norm',
  moment: (which: 'm' | 'v', key: string) => `${which}.${key}`,
  next: (key: string) => `next.${key}`,
  nextMoment: (which: 'm' | 'v', key: string) => `next.${which}.${key}`,
} as const;

/** What the optimizer carries between steps: the moments of every weight, and how many steps were taken. */
export interface AdamWState {
  step: number;
  readonly m: Float32Array[];
  readonly v: Float32Array[];
}

export function adamWState(sizes: readonly number[]): AdamWState {
  return { step: 0, m: sizes.map((n) => new Float32Array(n)), v: sizes.map((n) => new Float32Array(n)) };
}

/** What one update needs besides the gradients: the learning rate and the bias corrections of its step. */
export interface AdamWScalars {
  readonly lr: number;
  readonly c1: number;
  readonly c2: number;
}

/** The scalars of update number `step` (0-based) at learning rate `lr`. */
export function adamWScalars(step: number, lr: number, s: AdamWSettings = ADAMW_DEFAULTS): AdamWScalars {
  return { lr, c1: 1 - s.beta1 ** (step + 1), c2: 1 - s.beta2 ** (step + 1) };
}

/**
 * Appends one optimizer step to a training graph: the gradients of `weights` clipped to global norm `clip`,
 * then AdamW; the updated weights and moments are outputs (`next.<key>`, `next.m.<key>`, `next.v.<key>`).
 */
export function appendAdamW(g: GraphBuilder, weights: ReadonlyMap<string, Tensor>, grads: ReadonlyMap<string, string>, clip: number, s: AdamWSettings = ADAMW_DEFAULTS): void {
  const keys = [...weights.keys()];
  const [lr, c1, c2] = [OPTIMIZER.lr, OPTIMIZER.c1, OPTIMIZER.c2].map((name) => g.input(name, DataType.FLOAT, []));
  const squares = keys.map((k) => g.node('ReduceSumSquare', [grads.get(k)!], { keepdims: 0 }));
  const norm = g.node('Sqrt', [squares.length === 1 ? squares[0] : g.node('Sum', squares)], {}, 'grad_norm_raw');
  g.expose(norm, OPTIMIZER.gradNorm, []);
  const factor = g.node('Min', [g.float(1), g.node('Div', [g.float(clip), g.node('Add', [norm, g.float(1e-6)])])], {}, 'clip_factor');
  const decay = g.node('Sub', [g.float(1), g.node('Mul', [lr, g.float(s.weightDecay)])], {}, 'decay');
  // Every scalar folded into the few that multiply whole tensors, since each elementwise pass over the weights
  // costs as much as the next (the optimizer is a third of a SmolLM2-135M-shaped step; 15 passes before, 13 now):
  // m' = β₁m + (1 − β₁)·c·g and v' = β₂v + (1 − β₂)·c²·g², c the clip factor;
  // w' = decay·w − m'·(lr / (1 − β₁ᵗ) / √s) / (√v' + ε / √s), s = 1 / (1 − β₂ᵗ) — torch's lr·m̂ / (√v̂ + ε).
  const gScale = g.node('Mul', [factor, g.float(1 - s.beta1)], {}, 'm_grad_scale');
  const g2Scale = g.node('Mul', [g.node('Mul', [factor, factor]), g.float(1 - s.beta2)], {}, 'v_grad_scale');
  const sqrtVScale = g.node('Sqrt', [g.node('Div', [g.float(1), c2])]);
  const stepSize = g.node('Div', [g.node('Div', [lr, c1]), sqrtVScale], {}, 'step_size');
  const eps = g.node('Div', [g.float(s.eps), sqrtVScale], {}, 'eps_scaled');
  for (const k of keys) {
    const shape = [...weights.get(k)!.shape];
    const [m, v] = (['m', 'v'] as const).map((which) => g.input(OPTIMIZER.moment(which, k), DataType.FLOAT, shape));
    const grad = grads.get(k)!;
    const m2 = g.nodeAsOutput('Add', [g.node('Mul', [m, g.float(s.beta1)]), g.node('Mul', [grad, gScale])], OPTIMIZER.nextMoment('m', k), shape);
    const v2 = g.nodeAsOutput('Add', [g.node('Mul', [v, g.float(s.beta2)]), g.node('Mul', [g.node('Mul', [grad, grad]), g2Scale])], OPTIMIZER.nextMoment('v', k), shape);
    const step = g.node('Div', [g.node('Mul', [m2, stepSize]), g.node('Add', [g.node('Sqrt', [v2]), eps])]);
    g.nodeAsOutput('Sub', [g.node('Mul', [k, decay]), step], OPTIMIZER.next(k), shape);
  }
}

/** Linear warm-up to `peak` over `warmup` steps, then cosine decay to zero at `total` steps (transformers' schedule). */
export function learningRate(step: number, peak: number, warmup: number, total: number): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return peak * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}

/** A step's optimizer inputs: its scalars, and each weight's current value and moments. */
export function optimizerFeeds(scalars: AdamWScalars, keys: readonly string[], shapes: readonly (readonly number[])[], state: { readonly weights: readonly Float32Array[]; readonly m: readonly Float32Array[]; readonly v: readonly Float32Array[] }): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {
    [OPTIMIZER.lr]: float32Tensor(Float32Array.of(scalars.lr), []),
    [OPTIMIZER.c1]: float32Tensor(Float32Array.of(scalars.c1), []),
    [OPTIMIZER.c2]: float32Tensor(Float32Array.of(scalars.c2), []),
  };
  keys.forEach((k, i) => {
    feeds[k] = float32Tensor(state.weights[i], shapes[i]);
    feeds[OPTIMIZER.moment('m', k)] = float32Tensor(state.m[i], shapes[i]);
    feeds[OPTIMIZER.moment('v', k)] = float32Tensor(state.v[i], shapes[i]);
  });
  return feeds;
}

/** The weights and moments after a step, as the step's graph returned them. */
export function optimizerOutputs(out: Readonly<Record<string, ort.Tensor>>, keys: readonly string[]): { weights: Float32Array[]; m: Float32Array[]; v: Float32Array[] } {
  return {
    weights: keys.map((k) => out[OPTIMIZER.next(k)].data as Float32Array),
    m: keys.map((k) => out[OPTIMIZER.nextMoment('m', k)].data as Float32Array),
    v: keys.map((k) => out[OPTIMIZER.nextMoment('v', k)].data as Float32Array),
  };
}
