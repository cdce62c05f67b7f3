import type { ModelConfig } from '../arch/config.js';
import { kindOf } from '../arch/variants/registry.js';
import type { SubBlock, VariantOf } from '../arch/variant.js';
import { elementBytes, matmulKernel, rmsNormKernel, type Kernel, type Step } from './kernels.js';
import type { Device, Workload } from './types.js';

export type { Kernel, Step };

/** Roofline time of one kernel: bound by compute or by memory traffic, plus its launch overhead. */
export function kernelSeconds(k: Kernel, device: Device, workload: Workload): number {
  const peak = device.peakFlops[workload.activationDtype];
  if (peak === undefined) throw new Error(`device ${device.name} has no peak for ${workload.activationDtype}`);
  const compute = k.flops / (peak * device.computeEfficiency);
  const memory = k.bytes / (device.memoryBandwidth * device.bandwidthEfficiency);
  return Math.max(compute, memory) + device.kernelOverhead;
}

/** The kernels a sub-block runs in one step, as its variant kind counts them. */
export function subBlockKernels<S extends SubBlock>(config: ModelConfig, sub: S, v: VariantOf[S], step: Step, workload: Workload): Kernel[] {
  return kindOf(sub, v).kernels(config, v, step, workload);
}

export const attentionKernels = (config: ModelConfig, v: VariantOf['attention'], step: Step, workload: Workload) => subBlockKernels(config, 'attention', v, step, workload);
export const ffnKernels = (config: ModelConfig, v: VariantOf['ffn'], step: Step, workload: Workload) => subBlockKernels(config, 'ffn', v, step, workload);

/** Embedding lookup, final norm, and the LM head on the last position of each sequence (all generation needs). */
export function restKernels(config: ModelConfig, step: Step, workload: Workload): Kernel[] {
  const b = elementBytes(workload);
  const E = config.hiddenSize;
  const N = step.batch * step.tokens;
  return [
    { flops: 0, bytes: N * E * (b.w + b.a) },
    rmsNormKernel(N, E, b),
    matmulKernel(step.batch, E, config.vocabSize, b),
  ];
}
