/**
 * The architecture vocabulary every stage speaks: what one layer of a (possibly heterogeneous) child is.
 * The parent is the architecture in which every layer keeps the parent's own sizes.
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

export interface BlockConfig {
  readonly attention: AttentionVariant;
  readonly ffn: FfnVariant;
}

/** One BlockConfig per layer, in order. */
export type Architecture = readonly BlockConfig[];

export type SubBlock = 'attention' | 'ffn';

/** A stable, file-name-safe key per variant, for caches and library paths. */
export function attentionKey(v: AttentionVariant): string {
  return v.kind === 'gqa' ? `attn-gqa${v.kvHeads}` : `attn-${v.kind}`;
}

export function ffnKey(v: FfnVariant): string {
  return v.kind === 'swiglu' ? `ffn-swiglu${v.intermediate}` : `ffn-${v.kind}`;
}

export function blockKey(b: BlockConfig): string {
  return `${attentionKey(b.attention)}.${ffnKey(b.ffn)}`;
}

export function sameAttention(a: AttentionVariant, b: AttentionVariant): boolean {
  return attentionKey(a) === attentionKey(b);
}

export function sameFfn(a: FfnVariant, b: FfnVariant): boolean {
  return ffnKey(a) === ffnKey(b);
}

export function describeAttention(v: AttentionVariant): string {
  return v.kind === 'gqa' ? `GQA ${v.kvHeads} KV heads` : v.kind === 'linear' ? 'linear' : 'no-op';
}

export function describeFfn(v: FfnVariant): string {
  return v.kind === 'swiglu' ? `SwiGLU ${v.intermediate}` : v.kind === 'linear' ? 'linear' : 'no-op';
}
