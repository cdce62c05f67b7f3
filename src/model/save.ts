import { join } from 'node:path';
import type { ModelConfig } from '../arch/config.js';
import type { Architecture } from '../arch/variant.js';
import { writeJsonAtomic } from '../util/atomic.js';
import type { Tensor } from '../util/tensor.js';
import { writeSafetensors } from './safetensors.js';
import { checkpointTensorSpecs, layerTensors, type ModelWeights } from './weights.js';

/** Every tensor of a model under its HuggingFace / DeciLM checkpoint name, in checkpoint order. */
export function checkpointTensors(config: ModelConfig, arch: Architecture, weights: ModelWeights): Map<string, Tensor> {
  const specs = checkpointTensorSpecs(config, arch);
  const out = new Map<string, Tensor>([[specs.embed.name, weights.embed]]);
  weights.layers.forEach((layer, i) => {
    for (const [key, t] of Object.entries(layerTensors(config, layer))) out.set(specs.layers[i][key].name, t);
  });
  out.set(specs.finalNorm.name, weights.finalNorm);
  if (specs.lmHead !== null) out.set(specs.lmHead.name, weights.lmHead);
  return out;
}

/** Writes config.json and model.safetensors (float32) into `dir`, each atomically. */
export function writeCheckpoint(dir: string, configJson: Record<string, unknown>, config: ModelConfig, arch: Architecture, weights: ModelWeights): void {
  writeSafetensors(join(dir, 'model.safetensors'), checkpointTensors(config, arch, weights));
  writeJsonAtomic(join(dir, 'config.json'), configJson);
}
