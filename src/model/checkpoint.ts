import type { ModelConfig } from '../arch/config.js';
import { architectureProblems, parentArchitecture } from '../arch/config.js';
import { fromDeciBlockConfigs } from '../arch/decilm.js';
import type { Architecture } from '../arch/variant.js';
import { fail } from '../util/errors.js';
import { sameShape, type Tensor } from '../util/tensor.js';
import { DECI_FAMILY, readModelConfig } from './config.js';
import { openTensorSource, type TensorSource } from './tensor-source.js';
import { checkpointTensorSpecs, layerWeightsFrom, type ModelWeights, type TensorSpec } from './weights.js';

/** A loaded checkpoint: its global config, the architecture its layers have, and float32 weights. */
export interface Checkpoint {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly architecture: Architecture;
  readonly weights: ModelWeights;
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
    const read = (spec: TensorSpec, usedBy: string) => readChecked(source, spec, usedBy);
    const embed = read(specs.embed, 'the token embedding');
    const layers = architecture.map((block, i) =>
      layerWeightsFrom(config, block, (key) => read(specs.layers[i][key], `layer ${i} ${key.split('.')[0]}`)),
    );
    const finalNorm = read(specs.finalNorm, 'the final norm');
    const lmHead = specs.lmHead === null ? embed : read(specs.lmHead, 'the LM head (tie_word_embeddings is false)');
    return { dir, config, architecture, weights: { embed, layers, finalNorm, lmHead } };
  } finally {
    source.close();
  }
}

/** A checkpoint's config and per-layer architecture from config.json alone, without its weights. */
export function readModelSpec(dir: string): { config: ModelConfig; architecture: Architecture } {
  const { config: parsed, raw, file } = readModelConfig(dir);
  const isDeci = (DECI_FAMILY as readonly string[]).includes(parsed.sourceArchitecture);
  const architecture = isDeci ? fromDeciBlockConfigs(file, parsed, raw.block_configs) : parentArchitecture(parsed);
  const config = isDeci ? withDeciParentSizes(parsed, architecture) : parsed;
  const problems = architectureProblems(config, architecture);
  if (problems.length > 0) fail(`${file}: ${problems[0]}`);
  return { config, architecture };
}

function readChecked(source: TensorSource, spec: TensorSpec, usedBy: string): Tensor {
  const entry = source.entry(spec.name);
  if (entry === undefined) fail(`${source.fileOf(spec.name)}: tensor "${spec.name}" is missing (needed by ${usedBy})`);
  if (!sameShape(entry.shape, spec.shape)) {
    fail(`${source.fileOf(spec.name)}: tensor "${spec.name}" has shape [${entry.shape.join(', ')}]; expected [${spec.shape.join(', ')}] from config.json`);
  }
  return source.read(spec.name);
}

/** DeciLM leaves the global KV heads and FFN width null; take the widest layer's as the parent's sizes. */
function withDeciParentSizes(config: ModelConfig, arch: Architecture): ModelConfig {
  let kv = 0;
  let ffn = 0;
  for (const b of arch) {
    if (b.attention.kind === 'gqa') kv = Math.max(kv, b.attention.kvHeads);
    if (b.ffn.kind === 'swiglu') ffn = Math.max(ffn, b.ffn.intermediate);
  }
  return { ...config, numKvHeads: kv || config.numKvHeads, intermediateSize: ffn || config.intermediateSize };
}
