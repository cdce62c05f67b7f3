import { attentionKey, ffnKey } from '../arch/variants/registry.js';
import { type AttentionVariant, type FfnVariant } from '../arch/variant.js';
import type { SearchSpace } from './types.js';

/** Every distinct attention and FFN variant a space allows anywhere, keyed by variant key. */
export function distinctVariants(space: SearchSpace): { attention: [string, AttentionVariant][]; ffn: [string, FfnVariant][] } {
  const attention = new Map<string, AttentionVariant>();
  const ffn = new Map<string, FfnVariant>();
  for (const layer of space.layers) {
    for (const v of layer.attention) attention.set(attentionKey(v), v);
    for (const v of layer.ffn) ffn.set(ffnKey(v), v);
  }
  return { attention: [...attention], ffn: [...ffn] };
}
