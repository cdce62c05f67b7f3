/**
 * Real models' config.json, as their publishers ship them, and seeded random checkpoints of those shapes:
 * what the speed and memory benchmarks load (the values of the weights do not matter to either).
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelConfig } from '../src/model/config.js';
import { f32ToBf16 } from '../src/model/dtype.js';
import { checkpointTensorSpecs } from '../src/model/weights.js';
import { parentArchitecture } from '../src/arch/config.js';
import { writeSafetensorsStreaming, type TensorToWrite } from '../src/model/safetensors.js';
import { writeJsonAtomic } from '../src/util/atomic.js';
import { SHARED_DIR } from '../src/util/project.js';
import { Rng } from '../src/util/rng.js';

const common = { attention_bias: false, attention_dropout: 0.0, hidden_act: 'silu', model_type: 'llama', pretraining_tp: 1, rms_norm_eps: 1e-5, torch_dtype: 'bfloat16', use_cache: true };

/** HuggingFaceTB/SmolLM2-135M */
export const SMOLLM2_135M = {
  ...common, architectures: ['LlamaForCausalLM'], bos_token_id: 0, eos_token_id: 0, hidden_size: 576, initializer_range: 0.041666666666666664,
  intermediate_size: 1536, is_llama_config: true, max_position_embeddings: 8192, num_attention_heads: 9, num_hidden_layers: 30,
  num_key_value_heads: 3, rope_interleaved: false, rope_scaling: null, rope_theta: 100000, tie_word_embeddings: true, transformers_version: '4.40.1', vocab_size: 49152,
};

/** meta-llama/Llama-3.2-1B */
export const LLAMA_32_1B = {
  ...common, architectures: ['LlamaForCausalLM'], bos_token_id: 128000, eos_token_id: 128001, head_dim: 64, hidden_size: 2048, initializer_range: 0.02,
  intermediate_size: 8192, max_position_embeddings: 131072, mlp_bias: false, num_attention_heads: 32, num_hidden_layers: 16, num_key_value_heads: 8,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0, tie_word_embeddings: true, transformers_version: '4.45.0.dev0', vocab_size: 128256,
};

/** meta-llama/Llama-3.1-8B */
export const LLAMA_31_8B = {
  ...common, architectures: ['LlamaForCausalLM'], bos_token_id: 128000, eos_token_id: 128001, hidden_size: 4096, initializer_range: 0.02,
  intermediate_size: 14336, max_position_embeddings: 131072, mlp_bias: false, num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 8,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0, tie_word_embeddings: false, transformers_version: '4.43.0.dev0', vocab_size: 128256,
};

export interface ModelShape {
  readonly name: string;
  readonly configJson: Record<string, unknown>;
  /** Safetensors files, as the publisher splits the checkpoint (an index when more than one). */
  readonly shards: number;
}

export const SHAPES: readonly ModelShape[] = [
  { name: 'SmolLM2-135M', configJson: SMOLLM2_135M, shards: 1 },
  { name: 'Llama-3.2-1B', configJson: LLAMA_32_1B, shards: 2 },
  { name: 'Llama-3.1-8B', configJson: LLAMA_31_8B, shards: 4 },
];

/**
 * A seeded random bf16 checkpoint of a shape in `dir` (kept: later runs reuse it), written one tensor at a
 * time so that an 8B checkpoint never has to fit in memory. Matrices are uniform with a trained model's
 * scale (std 1/√fan-in), norms scatter around 1; it borrows stories260K's tokenizer, whose ids lie within
 * every vocabulary here.
 */
export function randomCheckpoint(shape: ModelShape, dir: string, seed = 0): string {
  const done = join(dir, 'config.json');
  if (existsSync(done)) return dir;
  mkdirSync(dir, { recursive: true });
  const config = parseModelConfig(`${shape.name} config.json`, shape.configJson);
  const specs = checkpointTensorSpecs(config, parentArchitecture(config));
  const all = [specs.embed, ...specs.layers.flatMap((l) => Object.values(l)), specs.finalNorm, ...(specs.lmHead ? [specs.lmHead] : [])];
  const rng = new Rng(seed);
  const tensor = (shapeOf: readonly number[]): TensorToWrite => ({
    dtype: 'BF16',
    shape: shapeOf,
    bytes: () => {
      const n = shapeOf.reduce((a, b) => a * b, 1);
      const values = new Float32Array(n);
      if (shapeOf.length === 1) for (let i = 0; i < n; i++) values[i] = 1 + 0.2 * (rng.next() - 0.5);
      else {
        const half = Math.sqrt(3 / shapeOf[1]);
        for (let i = 0; i < n; i++) values[i] = (2 * rng.next() - 1) * half;
      }
      const b = f32ToBf16(values);
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    },
  });
  const totalBytes = all.reduce((s, t) => s + 2 * t.shape.reduce((a, b) => a * b, 1), 0);
  const shardFiles = Array.from({ length: shape.shards }, (_, k) => (shape.shards === 1 ? 'model.safetensors' : `model-${String(k + 1).padStart(5, '0')}-of-${String(shape.shards).padStart(5, '0')}.safetensors`));
  const weightMap: Record<string, string> = {};
  let shard = 0;
  let inShard = 0;
  let current = new Map<string, TensorToWrite>();
  const flush = () => {
    writeSafetensorsStreaming(join(dir, shardFiles[shard]), current, { format: 'pt' });
    current = new Map();
  };
  for (const spec of all) {
    const bytes = 2 * spec.shape.reduce((a, b) => a * b, 1);
    if (inShard > 0 && inShard + bytes > totalBytes / shape.shards && shard + 1 < shape.shards) {
      flush();
      shard++;
      inShard = 0;
    }
    current.set(spec.name, tensor(spec.shape));
    weightMap[spec.name] = shardFiles[shard];
    inShard += bytes;
  }
  flush();
  if (shape.shards > 1) writeJsonAtomic(join(dir, 'model.safetensors.index.json'), { metadata: { total_size: totalBytes }, weight_map: weightMap });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(SHARED_DIR, 'models/stories260K', f), join(dir, f));
  // config.json last: its presence says the checkpoint is complete.
  writeJsonAtomic(done, shape.configJson);
  return dir;
}
