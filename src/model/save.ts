import { join } from 'node:path';
import type { ModelConfig } from '../arch/config.js';
import type { Architecture } from '../arch/variant.js';
import { writeJsonAtomic } from '../util/atomic.js';
import type { Tensor } from '../util/tensor.js';
import { writeSafetensors, writeSafetensorsStreaming, type TensorToWrite } from './safetensors.js';
import { checkpointTensorSpecs, layerTensors, type LayerWeights, type ModelWeights, type WeightSource } from './weights.js';

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

/**
 * Writes every tensor of a source as one float32 safetensors file under its checkpoint name, reading one
 * layer at a time as the writer reaches it (a model larger than memory passes through it).
 */
export function writeSourceSafetensors(path: string, config: ModelConfig, arch: Architecture, source: WeightSource, metadata: Record<string, string> = {}): void {
  const specs = checkpointTensorSpecs(config, arch);
  let current: { i: number; tensors: Record<string, Tensor> } | null = null;
  const layerTensor = (i: number, key: string): Tensor => {
    if (current?.i !== i) current = { i, tensors: layerTensors(config, source.layer(i) as LayerWeights) };
    return current.tensors[key];
  };
  const f32 = (shape: readonly number[], read: () => Tensor): TensorToWrite => ({
    dtype: 'F32',
    shape,
    bytes: () => {
      const t = read();
      return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    },
  });
  const out = new Map<string, TensorToWrite>([[specs.embed.name, f32(specs.embed.shape, () => source.embed())]]);
  specs.layers.forEach((layer, i) => {
    for (const [key, spec] of Object.entries(layer)) out.set(spec.name, f32(spec.shape, () => layerTensor(i, key)));
  });
  out.set(specs.finalNorm.name, f32(specs.finalNorm.shape, () => source.finalNorm()));
  if (specs.lmHead !== null) out.set(specs.lmHead.name, f32(specs.lmHead.shape, () => source.lmHead()));
  writeSafetensorsStreaming(path, out, metadata);
}

/** Writes config.json and model.safetensors (float32) into `dir`, each atomically. */
export function writeCheckpoint(dir: string, configJson: Record<string, unknown>, config: ModelConfig, arch: Architecture, weights: ModelWeights): void {
  writeSafetensors(join(dir, 'model.safetensors'), checkpointTensors(config, arch, weights));
  writeJsonAtomic(join(dir, 'config.json'), configJson);
}
