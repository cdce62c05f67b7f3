import type { ExecutionProvider } from '../onnx/providers.js';
import type { ScenarioCalibration } from './calibrate.js';

/** Numeric formats a workload stores or computes in. */
export type Dtype = 'fp32' | 'tf32' | 'fp16' | 'bf16' | 'fp8' | 'int8';
export const DTYPES: readonly Dtype[] = ['fp32', 'tf32', 'fp16', 'bf16', 'fp8', 'int8'];
export const DTYPE_BYTES: Record<Dtype, number> = { fp32: 4, tf32: 4, fp16: 2, bf16: 2, fp8: 1, int8: 1 };

/** A device, in SI base units (FLOP/s, bytes/s, bytes, seconds). */
export interface Device {
  readonly name: string;
  /** Dense peak FLOP/s (or OP/s) per compute dtype. */
  readonly peakFlops: Partial<Record<Dtype, number>>;
  readonly memoryBandwidth: number;
  readonly memoryCapacity: number;
  /** Fraction of peak FLOP/s real kernels reach (GEMM efficiency). */
  readonly computeEfficiency: number;
  /** Fraction of peak bandwidth real kernels reach. */
  readonly bandwidthEfficiency: number;
  /** Fixed cost of launching one kernel. */
  readonly kernelOverhead: number;
  /** Fixed cost of one forward call (framework dispatch), paid once per prefill and per decoded token. */
  readonly stepOverhead: number;
}

/** One way the model is used: `batch` sequences, each a prompt of `prefillTokens` then `generatedTokens` decoded. */
export interface Scenario {
  readonly name: string;
  readonly prefillTokens: number;
  readonly generatedTokens: number;
  readonly batch: number;
}

export interface Workload {
  readonly weightDtype: Dtype;
  /** Activations, and the dtype whose peak FLOP/s the matmuls run at. */
  readonly activationDtype: Dtype;
  readonly kvCacheDtype: Dtype;
  readonly scenarios: readonly Scenario[];
}

/** Seconds one sub-block (or the non-layer rest) takes in a scenario. */
export interface ScenarioTime {
  /** The whole prompt of the whole batch. */
  readonly prefillSeconds: number;
  /** All generated tokens of the whole batch, summed over decode steps. */
  readonly decodeSeconds: number;
}

/** Prefill and decode together: the whole scenario. */
export const totalSeconds = (t: ScenarioTime): number => t.prefillSeconds + t.decodeSeconds;

/** Latencies measured by `tessera profile` for one model's candidate sub-blocks, keyed by variant key. */
export interface MeasuredCosts {
  /** What was measured: the model directory and its shape, so a profile is not applied to another model. */
  readonly model: { readonly dir: string; readonly hiddenSize: number; readonly numHeads: number; readonly headDim: number; readonly vocabSize: number };
  /** The onnxruntime execution provider the times are of (absent: cpu). */
  readonly provider?: ExecutionProvider;
  readonly threads: number;
  readonly repeats: number;
  /** scenario name → variant key (attentionKey / ffnKey, or "rest") → time, calibrated (see `calibration`). */
  readonly scenarios: Readonly<Record<string, Readonly<Record<string, ScenarioTime>>>>;
  /** scenario name → the line fitted from sums of sub-blocks to whole-model times, already folded into `scenarios` (absent in profiles measured before calibration). */
  readonly calibration?: Readonly<Record<string, ScenarioCalibration>>;
}

export interface HardwareProfile {
  readonly name: string;
  readonly file: string;
  readonly device: Device;
  readonly workload: Workload;
  /** Where each device number comes from, keyed by its field path. */
  readonly sources: Readonly<Record<string, string>>;
  readonly measured: MeasuredCosts | null;
}
