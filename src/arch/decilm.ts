import { fail } from '../util/errors.js';
export { ffnMultToIntermediate, intermediateToFfnMult } from './ffn-mult.js';
import type { ModelConfig } from './config.js';
import { kindOf, kinds } from './variants/registry.js';
import { type Architecture, type BlockConfig, type SubBlock, type VariantOf } from './variant.js';

/**
 * The Nemotron-51B / DeciLM (`model_type: "nemotron-nas"`) per-layer `block_configs`, as read by
 * transformers' remote code, vLLM, TensorRT-LLM and llama.cpp. Each variant kind writes and recognises its
 * own entries; this module owns the format around them.
 */
export type DeciSubBlockConfig = Readonly<Record<string, number | boolean | null>>;

export interface DeciBlockConfig {
  readonly attention: DeciSubBlockConfig;
  readonly ffn: DeciSubBlockConfig;
}

/**
 * Every key NVIDIA's block_config.py defines, at its default: the published Nemotron-NAS configs list them all,
 * and readers index them (llama.cpp's converter reads n_heads_in_group, replace_with_linear and ffn_mult by key).
 */
const DECI_DEFAULTS: Readonly<Record<SubBlock, DeciSubBlockConfig>> = {
  attention: { n_heads_in_group: null, no_op: false, num_sink_tokens: null, replace_with_linear: false, sparsify: null, unshifted_sink: false, use_prefill_window_in_sink_attention: false, window_length: null },
  ffn: { ffn_mult: null, no_op: false, replace_with_linear: false, sparsify: null },
};

export function toDeciBlockConfig(config: ModelConfig, block: BlockConfig): DeciBlockConfig {
  return {
    attention: { ...DECI_DEFAULTS.attention, ...kindOf('attention', block.attention).toDeci(config, block.attention) },
    ffn: { ...DECI_DEFAULTS.ffn, ...kindOf('ffn', block.ffn).toDeci(config, block.ffn) },
  };
}

/**
 * A config.json's text, with every `ffn_mult` written as a float (`2.0`, not `2`): llama.cpp's converter asserts
 * that layer 0's is a Python float, and JSON.stringify writes whole numbers without a decimal point.
 */
export function configText(configJson: unknown): string {
  const mark = '\u0000float:';
  const text = JSON.stringify(configJson, (key, value) => (key === 'ffn_mult' && typeof value === 'number' && Number.isInteger(value) ? `${mark}${value}` : value), 2);
  return text.replace(/"\\u0000float:(-?\d+)"/g, '$1.0') + '\n';
}

export function toDeciBlockConfigs(config: ModelConfig, arch: Architecture): DeciBlockConfig[] {
  return arch.map((b) => toDeciBlockConfig(config, b));
}

/** Fields of the DeciLM format that Tessera cannot compute, per sub-block. */
const UNSUPPORTED: Record<SubBlock, readonly string[]> = {
  attention: ['sparsify', 'num_sink_tokens', 'unshifted_sink'],
  ffn: ['sparsify', 'moe'],
};

/** Parses `block_configs` from a config file; every error names the file, the layer and the field. */
export function fromDeciBlockConfigs(file: string, config: ModelConfig, blockConfigs: unknown): Architecture {
  if (!Array.isArray(blockConfigs)) fail(`${file}: field "block_configs" must be a list with one entry per layer`);
  if (blockConfigs.length !== config.numLayers) {
    fail(`${file}: field "block_configs" has ${blockConfigs.length} entries; num_hidden_layers is ${config.numLayers}`);
  }
  return blockConfigs.map((entry, i) => {
    const where = (field: string) => `${file}: field "block_configs[${i}].${field}"`;
    const e = (entry ?? {}) as Partial<Record<SubBlock, unknown>>;
    const parse = <S extends SubBlock>(sub: S): VariantOf[S] => {
      const section = e[sub];
      if (typeof section !== 'object' || section === null) fail(`${where(sub)} is missing`);
      return parseSubBlock(sub, section as Record<string, unknown>, config, where);
    };
    return { attention: parse('attention'), ffn: parse('ffn') };
  });
}

/**
 * The sliding window of a DeciLM config: `window_length` of its attention layers (null: full attention).
 * Tessera computes one window for every layer, so layers that disagree are refused.
 */
export function deciSlidingWindow(file: string, blockConfigs: unknown): number | null {
  if (!Array.isArray(blockConfigs)) return null;
  const windows = new Map<number | null, number>();
  blockConfigs.forEach((entry, i) => {
    const attention = (entry as { attention?: Record<string, unknown> } | null)?.attention;
    if (typeof attention !== 'object' || attention === null || attention.no_op === true || attention.replace_with_linear === true) return;
    const w = attention.window_length ?? null;
    if (w !== null && (typeof w !== 'number' || !Number.isInteger(w) || w < 1)) {
      fail(`${file}: field "block_configs[${i}].attention.window_length" is ${JSON.stringify(w)}; expected a positive integer or null`);
    }
    if (!windows.has(w as number | null)) windows.set(w as number | null, i);
  });
  if (windows.size > 1) {
    const [[a, i], [b, j]] = [...windows];
    fail(`${file}: field "block_configs[${j}].attention.window_length" is ${JSON.stringify(b)} but block_configs[${i}] has ${JSON.stringify(a)}; Tessera supports one sliding window for all layers`);
  }
  return windows.size === 1 ? [...windows.keys()][0] : null;
}

function parseSubBlock<S extends SubBlock>(sub: S, obj: Record<string, unknown>, config: ModelConfig, where: (f: string) => string): VariantOf[S] {
  for (const k of UNSUPPORTED[sub]) {
    const v = obj[k];
    if (v !== undefined && v !== null && v !== false) fail(`${where(`${sub}.${k}`)} is ${JSON.stringify(v)}; Tessera supports only null/false here`);
  }
  const flags = ['no_op', 'replace_with_linear'].filter((key) => {
    const v = obj[key] ?? false;
    if (typeof v !== 'boolean') fail(`${where(`${sub}.${key}`)} is ${JSON.stringify(v)}; expected true or false`);
    return v;
  });
  if (flags.length > 1) fail(`${where(sub)} sets both no_op and replace_with_linear; expected at most one`);
  for (const kind of kinds(sub)) {
    const v = kind.fromDeci(obj, config, where);
    if (v !== null) return v as VariantOf[S];
  }
  throw new Error(`no variant kind of ${sub} reads ${JSON.stringify(obj)}`);
}

