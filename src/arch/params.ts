import type { ModelConfig } from './config.js';
import type { Architecture, AttentionVariant, FfnVariant } from './types.js';

/** Parameter counts and KV-cache sizes, from shapes alone (pure; used by inspect and the cost model). */

export function attentionParams(config: ModelConfig, v: AttentionVariant): number {
  const E = config.hiddenSize;
  const D = config.headDim;
  if (v.kind === 'noop') return 0;
  if (v.kind === 'linear') return E * E + E;
  return E * config.numHeads * D * 2 + E * v.kvHeads * D * 2 + E;
}

export function ffnParams(config: ModelConfig, v: FfnVariant): number {
  const E = config.hiddenSize;
  if (v.kind === 'noop') return 0;
  if (v.kind === 'linear') return E * E + E;
  return 3 * E * v.intermediate + E;
}

/** Embedding, final norm and (when untied) the LM head. */
export function nonLayerParams(config: ModelConfig): number {
  const embed = config.vocabSize * config.hiddenSize;
  return embed + config.hiddenSize + (config.tieEmbeddings ? 0 : embed);
}

export function modelParams(config: ModelConfig, arch: Architecture): number {
  return arch.reduce((s, b) => s + attentionParams(config, b.attention) + ffnParams(config, b.ffn), nonLayerParams(config));
}

/** K and V cache elements one token adds in this attention sub-block (0 unless it is GQA). */
export function kvCacheElementsPerToken(config: ModelConfig, v: AttentionVariant): number {
  return v.kind === 'gqa' ? 2 * v.kvHeads * config.headDim : 0;
}

export function modelKvCacheElementsPerToken(config: ModelConfig, arch: Architecture): number {
  return arch.reduce((s, b) => s + kvCacheElementsPerToken(config, b.attention), 0);
}
