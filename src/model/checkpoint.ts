import type { ModelConfig } from '../arch/config.js';
import type { Architecture } from '../arch/variant.js';
import { fail } from '../util/errors.js';
import { sameShape } from '../util/tensor.js';
import { readModelConfig, type ModelSpec } from './config.js';
import { openTensorSource, type TensorSource } from './tensor-source.js';
import { familyOf } from './families/registry.js';
import { READABLE_DTYPES } from './safetensors.js';
import type { StoredDtype } from './save.js';
import { checkpointTensorSpecs, inMemory, layerWeightsFrom, materialize, type CheckpointTensorSpecs, type ModelWeights, type TensorSpec, type WeightSource } from './weights.js';

/**
 * A checkpoint opened for use: its global config, the architecture its layers have, and its weights as a
 * source that reads each piece from the files when asked (float32), so that no command holds more of a
 * model than the layers it is computing.
 */
export interface Checkpoint {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly architecture: Architecture;
  readonly source: WeightSource;
  /** Identifies the weight files' contents (see `TensorSource.fingerprint`), read through the handles that loaded them. */
  readonly fingerprint: string;
  /** How its weights are stored (its embedding's dtype): what a child of it is written in unless told otherwise. */
  readonly dtype: StoredDtype;
}

/** A checkpoint with every weight in memory (small models: tests, training). */
export interface LoadedCheckpoint extends Checkpoint {
  readonly weights: ModelWeights;
}

/**
 * Opens a HuggingFace checkpoint directory of a supported family (or a DeciLM child with block_configs):
 * every tensor is checked for presence and shape against config.json from the files' headers; none is read.
 */
export function openCheckpoint(dir: string): Checkpoint {
  const { config, architecture } = readModelSpec(dir);
  const files = openTensorSource(dir);
  let specs: CheckpointTensorSpecs;
  try {
    specs = checkpointTensorSpecs(config, architecture);
    refuseUnused(files, specs, config);
    checkHeader(files, specs.embed, 'the token embedding');
    architecture.forEach((_, i) => Object.entries(specs.layers[i]).forEach(([key, spec]) => checkHeader(files, spec, `layer ${i} ${key.split('.')[0]}`)));
    checkHeader(files, specs.finalNorm, 'the final norm');
    if (specs.lmHead !== null) checkHeader(files, specs.lmHead, 'the LM head (tie_word_embeddings is false)');
  } catch (e) {
    files.close();
    throw e;
  }
  const source: WeightSource = {
    numLayers: architecture.length,
    architecture,
    layer: (i) => layerWeightsFrom(config, architecture[i], (key) => files.read(specs.layers[i][key].name)),
    embed: () => files.read(specs.embed.name),
    embedRows: (ids) => files.readRows(specs.embed.name, ids),
    finalNorm: () => files.read(specs.finalNorm.name),
    lmHead: () => files.read((specs.lmHead ?? specs.embed).name),
    tiedHead: specs.lmHead === null,
  };
  // The files stay open for the process's lifetime: layers are read as stages reach them.
  return { dir, config, architecture, source, fingerprint: files.fingerprint(), dtype: files.entry(specs.embed.name)!.dtype as StoredDtype };
}

/** Opens a checkpoint and reads every weight into memory. */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const ck = openCheckpoint(dir);
  const weights = materialize(ck.source);
  return { ...ck, source: inMemory(weights), weights };
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

function checkHeader(source: TensorSource, spec: TensorSpec, usedBy: string): void {
  const entry = source.entry(spec.name);
  if (entry === undefined) fail(`${source.fileOf(spec.name)}: tensor "${spec.name}" is missing (needed by ${usedBy})`);
  if (!sameShape(entry.shape, spec.shape)) {
    fail(`${source.fileOf(spec.name)}: tensor "${spec.name}" has shape [${entry.shape.join(', ')}]; expected [${spec.shape.join(', ')}] from config.json`);
  }
  if (!(READABLE_DTYPES as readonly string[]).includes(entry.dtype)) {
    fail(`${source.fileOf(spec.name)}: tensor "${spec.name}" has dtype ${entry.dtype}; expected one of ${READABLE_DTYPES.join(', ')}`);
  }
}

/** The dtype a model directory's weights are stored in (its embedding's), from the file headers alone; null when there are none. */
export function storedDtype(dir: string): StoredDtype | null {
  try {
    const { config, architecture } = readModelSpec(dir);
    const files = openTensorSource(dir);
    try {
      return (files.entry(checkpointTensorSpecs(config, architecture).embed.name)?.dtype ?? null) as StoredDtype | null;
    } finally {
      files.close();
    }
  } catch {
    return null;
  }
}
