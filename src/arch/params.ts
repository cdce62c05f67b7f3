import type { ModelConfig } from './config.js';
import { kindOf } from './variants/registry.js';
import type { Architecture, SubBlock, VariantOf } from './variant.js';

/** Parameter counts and KV-cache sizes, from shapes alone (pure; used by inspect and the cost model). */

export const subBlockParams = <S extends SubBlock>(config: ModelConfig, sub: S, v: VariantOf[S]) => kindOf(sub, v).params(config, v);
export const attentionParams = (config: ModelConfig, v: VariantOf['attention']) => subBlockParams(config, 'attention', v);
export const ffnParams = (config: ModelConfig, v: VariantOf['ffn']) => subBlockParams(config, 'ffn', v);

/** Embedding, final norm and (when untied) the LM head. */
export function nonLayerParams(config: ModelConfig): number {
  const embed = config.vocabSize * config.hiddenSize;
  return embed + config.hiddenSize + (config.tieEmbeddings ? 0 : embed);
}

export function modelParams(config: ModelConfig, arch: Architecture): number {
  return arch.reduce((s, b) => s + attentionParams(config, b.attention) + ffnParams(config, b.ffn), nonLayerParams(config));
}

/** K and V cache elements one token adds in this attention sub-block (0 when it keeps no cache). */
export function kvCacheElementsPerToken(config: ModelConfig, v: VariantOf['attention']): number {
  return 2 * kindOf('attention', v).cachedKvHeads(config, v) * config.headDim;
}

export function modelKvCacheElementsPerToken(config: ModelConfig, arch: Architecture): number {
  return arch.reduce((s, b) => s + kvCacheElementsPerToken(config, b.attention), 0);
}
