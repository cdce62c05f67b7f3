import type { ModelConfig } from '../arch/config.js';
import type { Architecture } from '../arch/variant.js';
import { fail } from '../util/errors.js';
import { sameShape, type Tensor } from '../util/tensor.js';
import { readModelConfig, type ModelSpec } from './config.js';
import { openTensorSource, type TensorSource } from './tensor-source.js';
import { familyOf } from './families/registry.js';
import { checkpointTensorSpecs, layerWeightsFrom, type CheckpointTensorSpecs, type ModelWeights, type TensorSpec } from './weights.js';

/** A loaded checkpoint: its global config, the architecture its layers have, and float32 weights. */
export interface Checkpoint {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly architecture: Architecture;
  readonly weights: ModelWeights;
  /** Identifies the weight files' contents (see `TensorSource.fingerprint`), read through the handles that loaded them. */
  readonly fingerprint: string;
}

/**
 * Loads a HuggingFace checkpoint directory (Llama/Mistral, or a DeciLM child with block_configs):
 * every tensor is checked for presence and shape against config.json before it is trusted.
 */
export function loadCheckpoint(dir: string): Checkpoint {
  const { config, architecture } = readModelSpec(dir);
  const source = openTensorSource(dir);
  try {
    const specs = checkpointTensorSpecs(config, architecture);
    refuseUnused(source, specs, config);
    const read = (spec: TensorSpec, usedBy: string) => readChecked(source, spec, usedBy);
    const embed = read(specs.embed, 'the token embedding');
    const layers = architecture.map((block, i) =>
      layerWeightsFrom(config, block, (key) => read(specs.layers[i][key], `layer ${i} ${key.split('.')[0]}`)),
    );
    const finalNorm = read(specs.finalNorm, 'the final norm');
    const lmHead = specs.lmHead === null ? embed : read(specs.lmHead, 'the LM head (tie_word_embeddings is false)');
    return { dir, config, architecture, weights: { embed, layers, finalNorm, lmHead }, fingerprint: source.fingerprint() };
  } finally {
    source.close();
  }
}

/** A checkpoint's config and per-layer architecture from config.json alone, without its weights. */
export function readModelSpec(dir: string): ModelSpec {
  const { config, architecture } = readModelConfig(dir);
  return { config, architecture };
}

/** RoPE frequency buffers some checkpoints carry: recomputed from the config, never needed. */
const IGNORABLE = /(^|\.)rotary_emb\.inv_freq$/;

/**
 * A tensor the architecture does not use would be dropped from the computation without a word (a Qwen2
 * checkpoint relabelled as Llama loses its q/k/v biases): name it instead. A tied head stored anyway is allowed.
 */
function refuseUnused(source: TensorSource, specs: CheckpointTensorSpecs, config: ModelConfig): void {
  const used = new Set([specs.embed, specs.finalNorm, ...(specs.lmHead ? [specs.lmHead] : []), ...specs.layers.flatMap((l) => Object.values(l))].map((s) => s.name));
  if (specs.lmHead === null) used.add(familyOf(config).tensorNames.lmHead);
  const unused = source.names().filter((n) => !used.has(n) && !IGNORABLE.test(n));
  if (unused.length > 0) {
    fail(`${source.fileOf(unused[0])}: tensor "${unused[0]}"${unused.length > 1 ? ` (and ${unused.length - 1} more)` : ''} is not used by a ${config.sourceArchitecture} with this config.json; Tessera would drop it from the computation`);
  }
}

function readChecked(source: TensorSource, spec: TensorSpec, usedBy: string): Tensor {
  const entry = source.entry(spec.name);
  if (entry === undefined) fail(`${source.fileOf(spec.name)}: tensor "${spec.name}" is missing (needed by ${usedBy})`);
  if (!sameShape(entry.shape, spec.shape)) {
    fail(`${source.fileOf(spec.name)}: tensor "${spec.name}" has shape [${entry.shape.join(', ')}]; expected [${spec.shape.join(', ')}] from config.json`);
  }
  return source.read(spec.name);
}
