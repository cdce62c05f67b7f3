import type { DeciSubBlockConfig } from '../decilm.js';
import type { AttentionVariant, FfnVariant, SubBlock } from '../variant.js';
import type { VariantKind } from './kind.js';

type NoopAttention = Extract<AttentionVariant, { kind: 'noop' }>;
type NoopFfn = Extract<FfnVariant, { kind: 'noop' }>;

/** A removed sub-block: it adds nothing to the residual stream, holds no tensors (not even a norm) and costs nothing. */
function noopKind<V extends NoopAttention | NoopFfn>(subBlock: SubBlock, keyPrefix: string, deci: DeciSubBlockConfig): VariantKind<V> {
  const noop = { kind: 'noop' } as V;
  return {
    subBlock,
    kind: 'noop' as V['kind'],
    removesSubBlock: true,
    key: () => `${keyPrefix}-noop`,
    label: () => 'no-op',
    describe: () => 'no-op',
    problems: () => [],
    params: () => 0,
    cachedKvHeads: () => 0,
    flops: () => 0,
    kernels: () => [],
    tensors: () => [],
    toDeci: () => deci,
    fromDeci: (entry) => (entry.no_op === true ? noop : null),
    spaceKeys: ['noop'],
    fromSpace: (section) => (section.flag('noop', false) ? [noop] : []),
    emit: () => null,
    reference: () => null,
    derive: async () => ({ init: { variant: noop, tensors: {} }, fitted: { variant: noop, tensors: {} }, ridge: undefined }),
    colour: () => '#e5e7eb',
  };
}

export const noopAttention = noopKind<NoopAttention>('attention', 'attn', { n_heads_in_group: null, no_op: true, replace_with_linear: false });
export const noopFfn = noopKind<NoopFfn>('ffn', 'ffn', { no_op: true, replace_with_linear: false, ffn_mult: null });
