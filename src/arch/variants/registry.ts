import type { ModelConfig } from '../config.js';
import type { Architecture, BlockConfig, SubBlock, VariantOf } from '../variant.js';
import { gqa } from './gqa.js';
import type { VariantKind } from './kind.js';
import { linearAttention, linearFfn } from './linear.js';
import { noopAttention, noopFfn } from './noop.js';
import { swiglu } from './swiglu.js';

/**
 * The variant kinds of each sub-block, in the order a search space offers them (which is the order of
 * options in each layer). Registering a kind is one line here, one member of the variant union in
 * `arch/variant.ts`, and its keys in the search-space schema.
 */
type Registry<S extends SubBlock> = { readonly [K in VariantOf[S]['kind']]: VariantKind<Extract<VariantOf[S], { kind: K }>> };

const ATTENTION: Registry<'attention'> = { gqa, linear: linearAttention, noop: noopAttention };
const FFN: Registry<'ffn'> = { swiglu, linear: linearFfn, noop: noopFfn };
const REGISTRY: { readonly [S in SubBlock]: Registry<S> } = { attention: ATTENTION, ffn: FFN };

/** Every kind of a sub-block. */
export function kinds(sub: SubBlock): readonly VariantKind[] {
  return Object.values(REGISTRY[sub]) as VariantKind[];
}

/** The kind of a variant: what it costs, holds, emits and how it is derived. */
export function kindOf<S extends SubBlock>(sub: S, v: VariantOf[S]): VariantKind<VariantOf[S]> {
  const kind = (REGISTRY[sub] as Record<string, VariantKind>)[v.kind];
  if (kind === undefined) throw new Error(`unknown ${sub} variant kind "${v.kind}"`);
  return kind as VariantKind<VariantOf[S]>;
}

/** A stable, file-name-safe key per variant, for caches and library paths (e.g. `attn-gqa4`, `ffn-swiglu172`). */
export const variantKey = <S extends SubBlock>(sub: S, v: VariantOf[S]): string => kindOf(sub, v).key(v);
export const attentionKey = (v: VariantOf['attention']) => variantKey('attention', v);
export const ffnKey = (v: VariantOf['ffn']) => variantKey('ffn', v);
export const blockKey = (b: BlockConfig) => `${attentionKey(b.attention)}.${ffnKey(b.ffn)}`;

export const sameVariant = <S extends SubBlock>(sub: S, a: VariantOf[S], b: VariantOf[S]) => variantKey(sub, a) === variantKey(sub, b);
export const sameAttention = (a: VariantOf['attention'], b: VariantOf['attention']) => sameVariant('attention', a, b);
export const sameFfn = (a: VariantOf['ffn'], b: VariantOf['ffn']) => sameVariant('ffn', a, b);

/** Whether a variant removes its sub-block (a no-op). */
export const removesSubBlock = <S extends SubBlock>(sub: S, v: VariantOf[S]) => kindOf(sub, v).removesSubBlock;

/** The K/V heads each layer of an architecture caches (0 for attention that keeps no cache), by layer index. */
export const cachedKvHeadsOf = (config: ModelConfig, arch: Architecture) => (layer: number): number => kindOf('attention', arch[layer].attention).cachedKvHeads(config, arch[layer].attention);

export const describeVariant = <S extends SubBlock>(sub: S, v: VariantOf[S]) => kindOf(sub, v).describe(v);
export const labelVariant = <S extends SubBlock>(sub: S, v: VariantOf[S]) => kindOf(sub, v).label(v);
