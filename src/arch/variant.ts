/**
 * The architecture vocabulary every stage speaks: what one layer of a (possibly heterogeneous) child is.
 * The parent is the architecture in which every layer keeps the parent's own sizes. What each kind of
 * variant means (its cost, tensors, graph, fit) lives in its module under arch/variants/.
 */

/** Attention sub-block: grouped-query attention with `kvHeads` K/V heads, one hidden×hidden matrix, or nothing. */
export type AttentionVariant =
  | { readonly kind: 'gqa'; readonly kvHeads: number }
  | { readonly kind: 'linear' }
  | { readonly kind: 'noop' };

/** FFN sub-block: SwiGLU with `intermediate` channels, one hidden×hidden matrix, or nothing. */
export type FfnVariant =
  | { readonly kind: 'swiglu'; readonly intermediate: number }
  | { readonly kind: 'linear' }
  | { readonly kind: 'noop' };

export type SubBlock = 'attention' | 'ffn';

/** The variant type of each sub-block. */
export interface VariantOf {
  readonly attention: AttentionVariant;
  readonly ffn: FfnVariant;
}

export type Variant = AttentionVariant | FfnVariant;

export interface BlockConfig {
  readonly attention: AttentionVariant;
  readonly ffn: FfnVariant;
}

/** One BlockConfig per layer, in order. */
export type Architecture = readonly BlockConfig[];

/** A layer that does nothing: both sub-blocks removed (dropped layers; the empty stack timings subtract). */
export const EMPTY_BLOCK: BlockConfig = { attention: { kind: 'noop' }, ffn: { kind: 'noop' } };

export const SUB_BLOCKS: readonly SubBlock[] = ['attention', 'ffn'];
