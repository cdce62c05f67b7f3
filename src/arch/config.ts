import type { Architecture, BlockConfig } from './types.js';

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
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
}

/** The parent itself: every layer at the config's own sizes. */
export function parentArchitecture(config: ModelConfig): Architecture {
  const block: BlockConfig = {
    attention: { kind: 'gqa', kvHeads: config.numKvHeads },
    ffn: { kind: 'swiglu', intermediate: config.intermediateSize },
  };
  return Array.from({ length: config.numLayers }, () => block);
}

/** Problems with an architecture for this config, as readable strings (empty when valid). */
export function architectureProblems(config: ModelConfig, arch: Architecture): string[] {
  const problems: string[] = [];
  if (arch.length !== config.numLayers) {
    problems.push(`has ${arch.length} layers, the model has ${config.numLayers}`);
  }
  arch.forEach((block, i) => {
    const a = block.attention;
    if (a.kind === 'gqa' && (!Number.isInteger(a.kvHeads) || a.kvHeads < 1 || config.numHeads % a.kvHeads !== 0)) {
      problems.push(`layer ${i}: ${a.kvHeads} KV heads does not divide the ${config.numHeads} query heads`);
    }
    const f = block.ffn;
    if (f.kind === 'swiglu' && (!Number.isInteger(f.intermediate) || f.intermediate < 1)) {
      problems.push(`layer ${i}: FFN width ${f.intermediate} is not a positive integer`);
    }
  });
  return problems;
}
