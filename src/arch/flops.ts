import type { ModelConfig } from './config.js';
import type { Architecture, AttentionVariant, FfnVariant } from './types.js';

/**
 * Floating-point operations (multiply and add counted apart) of a forward pass over `batch`
 * sequences of `seq` tokens, as the graphs execute them: attention scores and their weighted sum over
 * the full seq × seq square (the causal mask zeroes half of it after the fact).
 */
export function attentionFlops(config: ModelConfig, v: AttentionVariant, batch: number, seq: number): number {
  const N = batch * seq;
  const E = config.hiddenSize;
  if (v.kind === 'noop') return 0;
  if (v.kind === 'linear') return 2 * N * E * E;
  const qDim = config.numHeads * config.headDim;
  const kvDim = v.kvHeads * config.headDim;
  const projections = 2 * N * E * (qDim + 2 * kvDim) + 2 * N * qDim * E;
  const scoresAndMix = 2 * (2 * batch * config.numHeads * seq * seq * config.headDim);
  return projections + scoresAndMix;
}

export function ffnFlops(config: ModelConfig, v: FfnVariant, batch: number, seq: number): number {
  const N = batch * seq;
  const E = config.hiddenSize;
  if (v.kind === 'noop') return 0;
  if (v.kind === 'linear') return 2 * N * E * E;
  return 2 * N * E * 3 * v.intermediate;
}

export function lmHeadFlops(config: ModelConfig, batch: number, seq: number): number {
  return 2 * batch * seq * config.hiddenSize * config.vocabSize;
}

export function forwardFlops(config: ModelConfig, arch: Architecture, batch: number, seq: number): number {
  return arch.reduce(
    (s, b) => s + attentionFlops(config, b.attention, batch, seq) + ffnFlops(config, b.ffn, batch, seq),
    lmHeadFlops(config, batch, seq),
  );
}
