import type { ModelConfig } from './config.js';
import { kindOf } from './variants/registry.js';
import type { Architecture, SubBlock, VariantOf } from './variant.js';

/**
 * Floating-point operations (multiply and add counted apart) of a forward pass over `batch` sequences of
 * `seq` tokens, as the graphs execute them; each variant kind counts its own.
 */
export const subBlockFlops = <S extends SubBlock>(config: ModelConfig, sub: S, v: VariantOf[S], batch: number, seq: number) => kindOf(sub, v).flops(config, v, batch, seq);
export const attentionFlops = (config: ModelConfig, v: VariantOf['attention'], batch: number, seq: number) => subBlockFlops(config, 'attention', v, batch, seq);
export const ffnFlops = (config: ModelConfig, v: VariantOf['ffn'], batch: number, seq: number) => subBlockFlops(config, 'ffn', v, batch, seq);

export function lmHeadFlops(config: ModelConfig, batch: number, seq: number): number {
  return 2 * batch * seq * config.hiddenSize * config.vocabSize;
}

export function forwardFlops(config: ModelConfig, arch: Architecture, batch: number, seq: number): number {
  return arch.reduce(
    (s, b) => s + attentionFlops(config, b.attention, batch, seq) + ffnFlops(config, b.ffn, batch, seq),
    lmHeadFlops(config, batch, seq),
  );
}
