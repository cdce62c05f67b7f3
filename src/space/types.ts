import type { AttentionVariant, BlockConfig, FfnVariant } from '../arch/variant.js';

/** What one layer may become: its attention and FFN options and the (attention, FFN) pairs allowed together. */
export interface LayerChoices {
  readonly attention: readonly AttentionVariant[];
  readonly ffn: readonly FfnVariant[];
  /** The allowed combinations: every pair, unless the space ties no-ops together (layer dropping). */
  readonly blocks: readonly BlockConfig[];
}

/** A search space expanded against one parent: concrete variants per layer. */
export interface SearchSpace {
  readonly name: string;
  readonly file: string;
  readonly layers: readonly LayerChoices[];
}
