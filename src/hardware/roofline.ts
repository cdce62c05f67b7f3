import type { ModelConfig } from '../arch/config.js';
import type { AttentionVariant, FfnVariant } from '../arch/types.js';
import { DTYPE_BYTES, type Device, type Workload } from './types.js';

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

interface Bytes {
  readonly w: number;
  readonly a: number;
  readonly kv: number;
}

const bytesOf = (w: Workload): Bytes => ({ w: DTYPE_BYTES[w.weightDtype], a: DTYPE_BYTES[w.activationDtype], kv: DTYPE_BYTES[w.kvCacheDtype] });

/** Roofline time of one kernel: bound by compute or by memory traffic, plus its launch overhead. */
export function kernelSeconds(k: Kernel, device: Device, workload: Workload): number {
  const peak = device.peakFlops[workload.activationDtype];
  if (peak === undefined) throw new Error(`device ${device.name} has no peak for ${workload.activationDtype}`);
  const compute = k.flops / (peak * device.computeEfficiency);
  const memory = k.bytes / (device.memoryBandwidth * device.bandwidthEfficiency);
  return Math.max(compute, memory) + device.kernelOverhead;
}

/** A [rows, in] × [in, out] matmul against a weight matrix. */
function matmul(rows: number, inDim: number, outDim: number, b: Bytes): Kernel {
  return { flops: 2 * rows * inDim * outDim, bytes: inDim * outDim * b.w + rows * (inDim + outDim) * b.a };
}

function rmsNorm(rows: number, E: number, b: Bytes): Kernel {
  return { flops: 4 * rows * E, bytes: 2 * rows * E * b.a + E * b.w };
}

export function attentionKernels(config: ModelConfig, v: AttentionVariant, step: Step, workload: Workload): Kernel[] {
  if (v.kind === 'noop') return [];
  const b = bytesOf(workload);
  const E = config.hiddenSize;
  const N = step.batch * step.tokens;
  if (v.kind === 'linear') return [rmsNorm(N, E, b), matmul(N, E, E, b)];
  const H = config.numHeads;
  const D = config.headDim;
  const K = v.kvHeads;
  const total = step.pastTokens + step.tokens;
  // Query i of a step sees pastTokens + i keys (causal); a fused kernel skips the masked rest.
  const pairs = step.tokens * step.pastTokens + (step.tokens * (step.tokens + 1)) / 2;
  return [
    rmsNorm(N, E, b),
    matmul(N, E, (H + 2 * K) * D, b),
    // RoPE on q and k, and the new K/V written to the cache.
    { flops: 6 * N * (H + K) * D, bytes: 2 * N * (H + K) * D * b.a + 2 * N * K * D * b.kv },
    // Scores and weighted sum over the whole cache: every K/V position is read once per sequence.
    { flops: 4 * step.batch * H * D * pairs, bytes: step.batch * total * 2 * K * D * b.kv + 2 * N * H * D * b.a },
    matmul(N, H * D, E, b),
  ];
}

export function ffnKernels(config: ModelConfig, v: FfnVariant, step: Step, workload: Workload): Kernel[] {
  if (v.kind === 'noop') return [];
  const b = bytesOf(workload);
  const E = config.hiddenSize;
  const N = step.batch * step.tokens;
  if (v.kind === 'linear') return [rmsNorm(N, E, b), matmul(N, E, E, b)];
  const M = v.intermediate;
  return [
    rmsNorm(N, E, b),
    matmul(N, E, 2 * M, b),
    // silu(gate) · up
    { flops: 5 * N * M, bytes: 3 * N * M * b.a },
    matmul(N, M, E, b),
  ];
}

/** Embedding lookup, final norm, and the LM head on the last position of each sequence (all generation needs). */
export function restKernels(config: ModelConfig, step: Step, workload: Workload): Kernel[] {
  const b = bytesOf(workload);
  const E = config.hiddenSize;
  const N = step.batch * step.tokens;
  return [
    { flops: 0, bytes: N * E * (b.w + b.a) },
    rmsNorm(N, E, b),
    matmul(step.batch, E, config.vocabSize, b),
  ];
}
