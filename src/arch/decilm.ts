import { fail } from '../util/errors.js';
import type { ModelConfig } from './config.js';
import type { Architecture, AttentionVariant, BlockConfig, FfnVariant } from './types.js';

/**
 * The Nemotron-51B / DeciLM (`model_type: "nemotron-nas"`) per-layer `block_configs`, as read by
 * transformers' remote code, vLLM, TensorRT-LLM and llama.cpp.
 */
export interface DeciAttentionConfig {
  n_heads_in_group: number | null;
  no_op: boolean;
  replace_with_linear: boolean;
}

export interface DeciFfnConfig {
  /** Present when the width is expressible through DeciLM's ffn_mult mapping. */
  ffn_mult?: number | null;
  /** Exact width where ffn_mult cannot express it (puzzletron's newer DeciLMConfig; vLLM reads it). */
  intermediate_size?: number;
  no_op: boolean;
  replace_with_linear: boolean;
}

export interface DeciBlockConfig {
  attention: DeciAttentionConfig;
  ffn: DeciFfnConfig;
}

/** DeciLM's `_ffn_mult_to_intermediate_size`: int(2·mult·hidden/3) rounded up to a multiple of 256. */
export function ffnMultToIntermediate(ffnMult: number, hiddenSize: number): number {
  const n = Math.trunc((2 * ffnMult * hiddenSize) / 3);
  return n % 256 === 0 ? n : n + 256 - (n % 256);
}

/** The ffn_mult (rounded to 6 decimals, as DeciLM stores it) that maps back to exactly `intermediate`, if any. */
export function intermediateToFfnMult(intermediate: number, hiddenSize: number): number | null {
  const mult = Math.round(((3 * intermediate) / (2 * hiddenSize)) * 1e6) / 1e6;
  return ffnMultToIntermediate(mult, hiddenSize) === intermediate ? mult : null;
}

export function toDeciBlockConfig(config: ModelConfig, block: BlockConfig): DeciBlockConfig {
  const a = block.attention;
  const attention: DeciAttentionConfig = {
    n_heads_in_group: a.kind === 'gqa' ? config.numHeads / a.kvHeads : null,
    no_op: a.kind === 'noop',
    replace_with_linear: a.kind === 'linear',
  };
  const f = block.ffn;
  const ffn: DeciFfnConfig = { no_op: f.kind === 'noop', replace_with_linear: f.kind === 'linear' };
  if (f.kind === 'swiglu') {
    const mult = intermediateToFfnMult(f.intermediate, config.hiddenSize);
    if (mult !== null) ffn.ffn_mult = mult;
    else ffn.intermediate_size = f.intermediate;
  } else {
    ffn.ffn_mult = null;
  }
  return { attention, ffn };
}

export function toDeciBlockConfigs(config: ModelConfig, arch: Architecture): DeciBlockConfig[] {
  return arch.map((b) => toDeciBlockConfig(config, b));
}

/** Parses `block_configs` from a config file; every error names the file, the layer and the field. */
export function fromDeciBlockConfigs(file: string, config: ModelConfig, blockConfigs: unknown): Architecture {
  if (!Array.isArray(blockConfigs)) fail(`${file}: field "block_configs" must be a list with one entry per layer`);
  if (blockConfigs.length !== config.numLayers) {
    fail(`${file}: field "block_configs" has ${blockConfigs.length} entries; num_hidden_layers is ${config.numLayers}`);
  }
  return blockConfigs.map((entry, i) => {
    const where = (field: string) => `${file}: field "block_configs[${i}].${field}"`;
    const e = (entry ?? {}) as { attention?: Record<string, unknown>; ffn?: Record<string, unknown> };
    if (typeof e.attention !== 'object' || e.attention === null) fail(`${where('attention')} is missing`);
    if (typeof e.ffn !== 'object' || e.ffn === null) fail(`${where('ffn')} is missing`);
    return { attention: parseAttention(e.attention, config, where), ffn: parseFfn(e.ffn, config, where) };
  });
}

function rejectUnsupported(obj: Record<string, unknown>, keys: string[], where: (f: string) => string, sub: string): void {
  for (const k of keys) {
    const v = obj[k];
    if (v !== undefined && v !== null && v !== false) fail(`${where(`${sub}.${k}`)} is ${JSON.stringify(v)}; Tessera supports only null/false here`);
  }
}

function flag(obj: Record<string, unknown>, key: string, where: (f: string) => string, sub: string): boolean {
  const v = obj[key] ?? false;
  if (typeof v !== 'boolean') fail(`${where(`${sub}.${key}`)} is ${JSON.stringify(v)}; expected true or false`);
  return v;
}

function parseAttention(a: Record<string, unknown>, config: ModelConfig, where: (f: string) => string): AttentionVariant {
  rejectUnsupported(a, ['sparsify', 'window_length', 'num_sink_tokens', 'unshifted_sink'], where, 'attention');
  const noOp = flag(a, 'no_op', where, 'attention');
  const linear = flag(a, 'replace_with_linear', where, 'attention');
  if (noOp && linear) fail(`${where('attention')} sets both no_op and replace_with_linear; expected at most one`);
  if (noOp) return { kind: 'noop' };
  if (linear) return { kind: 'linear' };
  const g = a.n_heads_in_group;
  if (typeof g !== 'number' || !Number.isInteger(g) || g < 1 || config.numHeads % g !== 0) {
    fail(`${where('attention.n_heads_in_group')} is ${JSON.stringify(g)}; expected a divisor of num_attention_heads (${config.numHeads})`);
  }
  return { kind: 'gqa', kvHeads: config.numHeads / g };
}

function parseFfn(f: Record<string, unknown>, config: ModelConfig, where: (f: string) => string): FfnVariant {
  rejectUnsupported(f, ['sparsify', 'moe'], where, 'ffn');
  const noOp = flag(f, 'no_op', where, 'ffn');
  const linear = flag(f, 'replace_with_linear', where, 'ffn');
  if (noOp && linear) fail(`${where('ffn')} sets both no_op and replace_with_linear; expected at most one`);
  if (noOp) return { kind: 'noop' };
  if (linear) return { kind: 'linear' };
  const size = f.intermediate_size;
  if (size !== undefined && size !== null) {
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 1) {
      fail(`${where('ffn.intermediate_size')} is ${JSON.stringify(size)}; expected a positive integer`);
    }
    return { kind: 'swiglu', intermediate: size };
  }
  const mult = f.ffn_mult;
  if (typeof mult !== 'number' || !(mult > 0)) {
    fail(`${where('ffn.ffn_mult')} is ${JSON.stringify(mult)}; expected a positive number (or ffn.intermediate_size)`);
  }
  return { kind: 'swiglu', intermediate: ffnMultToIntermediate(mult, config.hiddenSize) };
}
