import { join } from 'node:path';
import type { ModelConfig, RopeScaling } from '../arch/config.js';
import { fail } from '../util/errors.js';
import { FieldReader, isObject, readJsonFile } from './json.js';

/** HuggingFace `architectures` whose decoder layer is Llama's: RMSNorm, RoPE, GQA, SwiGLU, no biases. */
export const LLAMA_FAMILY = ['LlamaForCausalLM', 'MistralForCausalLM'] as const;
export const DECI_FAMILY = ['DeciLMForCausalLM'] as const;

/** Reads and checks `config.json` of a HuggingFace checkpoint directory. */
export function readModelConfig(dir: string): { config: ModelConfig; raw: Record<string, unknown>; file: string } {
  const file = join(dir, 'config.json');
  const raw = readJsonFile(file, 'model config');
  if (!isObject(raw)) fail(`${file}: expected a JSON object`);
  return { config: parseModelConfig(file, raw), raw, file };
}

export function parseModelConfig(file: string, raw: Record<string, unknown>): ModelConfig {
  const f = new FieldReader(file, raw);
  const archs = raw.architectures;
  const sourceArchitecture = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : null;
  const supported: readonly string[] = [...LLAMA_FAMILY, ...DECI_FAMILY];
  if (sourceArchitecture === null || !supported.includes(sourceArchitecture)) {
    fail(
      `${file}: field "architectures" is ${JSON.stringify(archs ?? null)}; expected one of ${supported.join(', ')} ` +
        `(Llama-family decoders: RMSNorm, RoPE, GQA attention, SwiGLU FFN)`,
    );
  }
  if (f.boolean('attention_bias', false)) f.problem('attention_bias', 'false (attention biases are not supported)');
  if (f.boolean('mlp_bias', false)) f.problem('mlp_bias', 'false (FFN biases are not supported)');
  const act = f.string('hidden_act');
  if (act !== null && act !== 'silu') f.problem('hidden_act', '"silu" (SwiGLU)');

  const hiddenSize = f.positiveInt('hidden_size');
  const numHeads = f.positiveInt('num_attention_heads');
  const isDeci = (DECI_FAMILY as readonly string[]).includes(sourceArchitecture);
  // DeciLM writes null for the global KV heads and FFN width; the per-layer block_configs say them.
  const numKvHeads = isDeci && !f.has('num_key_value_heads') ? numHeads : f.positiveInt('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    f.problem('num_key_value_heads', `a divisor of num_attention_heads (${numHeads})`);
  }
  const headDim = f.positiveInt('head_dim', hiddenSize / numHeads);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    f.problem('head_dim', 'an even integer (RoPE rotates pairs); hidden_size / num_attention_heads is not one');
  }
  const intermediateSize = isDeci && !f.has('intermediate_size') ? 0 : f.positiveInt('intermediate_size');
  const tieEmbeddings = f.boolean('tie_word_embeddings', false);
  const slidingWindow = f.has('sliding_window') && f.boolean('use_sliding_window', true) ? f.positiveInt('sliding_window') : null;

  return {
    sourceArchitecture,
    hiddenSize,
    numLayers: f.positiveInt('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize,
    vocabSize: f.positiveInt('vocab_size'),
    rmsNormEps: f.positiveNumber('rms_norm_eps', 1e-6),
    ropeTheta: f.positiveNumber('rope_theta', 10000),
    ropeScaling: parseRopeScaling(f),
    maxPositions: f.positiveInt('max_position_embeddings', 2048),
    tieEmbeddings,
    slidingWindow,
    bosTokenId: f.intList('bos_token_id')[0] ?? null,
    eosTokenIds: f.intList('eos_token_id'),
  };
}

function parseRopeScaling(f: FieldReader): RopeScaling | null {
  const s = f.object('rope_scaling');
  if (s === null) return null;
  const type = s.string('rope_type') ?? s.string('type');
  if (type === null || type === 'default') return null;
  if (type === 'linear') return { type, factor: s.positiveNumber('factor') };
  if (type === 'llama3') {
    return {
      type,
      factor: s.positiveNumber('factor'),
      lowFreqFactor: s.positiveNumber('low_freq_factor'),
      highFreqFactor: s.positiveNumber('high_freq_factor'),
      originalMaxPositions: s.positiveInt('original_max_position_embeddings'),
    };
  }
  return s.problem('rope_type', '"default", "linear" or "llama3" (other RoPE scalings are not supported yet)');
}
