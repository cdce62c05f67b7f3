import { DTYPE_BYTES, type Workload } from './types.js';

/** One kernel's work: floating-point operations and bytes moved to or from device memory. */
export interface Kernel {
  readonly flops: number;
  readonly bytes: number;
}

/**
 * One forward call: `batch` sequences, each adding `tokens` new positions after `pastTokens` cached ones
 * (prefill: tokens = prompt, past = 0; decode: tokens = 1).
 */
export interface Step {
  readonly batch: number;
  readonly tokens: number;
  readonly pastTokens: number;
}

/** Bytes per element of weights, activations and K/V cache in a workload. */
export interface ElementBytes {
  readonly w: number;
  readonly a: number;
  readonly kv: number;
}

export const elementBytes = (w: Workload): ElementBytes => ({ w: DTYPE_BYTES[w.weightDtype], a: DTYPE_BYTES[w.activationDtype], kv: DTYPE_BYTES[w.kvCacheDtype] });

/** A [rows, in] × [in, out] matmul against a weight matrix. */
export function matmulKernel(rows: number, inDim: number, outDim: number, b: ElementBytes): Kernel {
  return { flops: 2 * rows * inDim * outDim, bytes: inDim * outDim * b.w + rows * (inDim + outDim) * b.a };
}

export function rmsNormKernel(rows: number, E: number, b: ElementBytes): Kernel {
  return { flops: 4 * rows * E, bytes: 2 * rows * E * b.a + E * b.w };
}
