import type { ModelConfig } from '../arch/config.js';
import type { Variant } from '../arch/variant.js';
import type { SubBlockWeights } from '../model/weights.js';
import type { MatrixOps } from '../onnx/matmul.js';
import type { TapSite } from '../onnx/emit.js';

/** Channel ranking for FFN width pruning: activation × ‖W_down column‖ (Minitron/Puzzle), or weight magnitude. */
export type ChannelRanking = 'activation' | 'magnitude';

/** Relative ridge strengths tried for every refit (chosen on held-out calibration rows). */
export const RIDGE_GRID: readonly number[] = [1e-3, 1e-1];

export interface DeriveOptions {
  readonly ranking: ChannelRanking;
  /** Relative ridge strengths tried for every refit (chosen on held-out calibration rows). */
  readonly ridgeGrid: readonly number[];
}

/** What a variant kind derives a candidate from: the parent's sub-block and its activations on calibration text. */
export interface DeriveContext {
  readonly config: ModelConfig;
  readonly layer: number;
  /** The parent's sub-block that the candidate replaces. */
  readonly parent: SubBlockWeights;
  /** The sub-block's input and the parent's output on the calibration tokens, each [tokens, hidden]. */
  readonly input: Float32Array;
  readonly output: Float32Array;
  /** Runs a sub-block alone over the calibration input and returns one of its taps, [tokens, width]. */
  tap(w: SubBlockWeights, site: TapSite): Promise<Float32Array>;
  /** The same for the parent's own sub-block, computed once per layer. */
  parentTap(site: TapSite): Promise<Float32Array>;
  readonly ops: MatrixOps;
  readonly options: DeriveOptions;
}

/** A candidate's initial and fitted weights. */
export interface Derived<V extends Variant> {
  readonly init: SubBlockWeights<V>;
  readonly fitted: SubBlockWeights<V>;
  /** The ridge strength of the refit; null when the held-out rows kept the initialisation; undefined when no fit applies. */
  readonly ridge: number | null | undefined;
}

/** The same weights with some tensors replaced (the others, and their order, kept). */
export function withTensors<V extends Variant>(w: SubBlockWeights<V>, replaced: Readonly<Record<string, SubBlockWeights['tensors'][string]>>): SubBlockWeights<V> {
  return { variant: w.variant, tensors: { ...w.tensors, ...replaced } };
}
