import { kindOf } from './variants/registry.js';
import { SUB_BLOCKS, type Architecture, type BlockConfig } from './variant.js';

export type RopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositions: number;
    };

/** The global shape of a Llama-family decoder: what every layer shares, and the parent's own sizes. */
export interface ModelConfig {
  /** The HuggingFace `architectures[0]` it was read from, e.g. LlamaForCausalLM. */
  readonly sourceArchitecture: string;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  /** The parent's K/V head count (a child may use fewer per layer). */
  readonly numKvHeads: number;
  readonly headDim: number;
  /** The parent's FFN width (a child may use other widths per layer). */
  readonly intermediateSize: number;
  readonly vocabSize: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling | null;
  readonly maxPositions: number;
  readonly tieEmbeddings: boolean;
  /** Mistral's sliding-window attention span in tokens; null for full causal attention. */
  readonly slidingWindow: number | null;
  /** Q, K and V projections carry biases (Qwen2); the output projection does not. */
  readonly qkvBias: boolean;
  /** Queries and keys are RMS-normalised per head over the head dimension before RoPE (Qwen3). */
  readonly qkNorm: boolean;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
}

/** The parent itself: every layer at the config's own sizes. */
export function parentArchitecture(config: ModelConfig): Architecture {
  return Array.from({ length: config.numLayers }, () => parentBlock(config));
}

/** The parent's own block: GQA at its K/V heads, SwiGLU at its width. */
export function parentBlock(config: ModelConfig): BlockConfig {
  return { attention: { kind: 'gqa', kvHeads: config.numKvHeads }, ffn: { kind: 'swiglu', intermediate: config.intermediateSize } };
}

/** Problems with an architecture for this config, as readable strings (empty when valid). */
export function architectureProblems(config: ModelConfig, arch: Architecture): string[] {
  const problems: string[] = [];
  if (arch.length !== config.numLayers) {
    problems.push(`has ${arch.length} layers, the model has ${config.numLayers}`);
  }
  arch.forEach((block, i) => {
    for (const sub of SUB_BLOCKS) for (const p of kindOf(sub, block[sub]).problems(config, block[sub])) problems.push(`layer ${i}: ${p}`);
  });
  return problems;
}
