import { join } from 'node:path';
import type { ModelConfig } from '../arch/config.js';
import type { Architecture } from '../arch/variant.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { fail } from '../util/errors.js';
import { f32ToBf16, f32ToF16 } from './dtype.js';
import type { Tensor } from '../util/tensor.js';
import { decode, writeSafetensors, writeSafetensorsStreaming, type TensorToWrite } from './safetensors.js';
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

/** The dtypes a checkpoint is written in, and the name transformers gives each (`torch_dtype`). */
export type StoredDtype = 'F32' | 'BF16' | 'F16';
export const TORCH_DTYPES: Readonly<Record<StoredDtype, string>> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };

/** A float32 tensor's bytes in `dtype`; float16 refuses values beyond its range (±65504) rather than storing Infinity. */
export function encodeTensor(t: Tensor, dtype: StoredDtype, name: string): Uint8Array {
  const bytes = (a: Float32Array | Uint16Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (dtype === 'F32') return bytes(t.data);
  if (dtype === 'BF16') return bytes(f32ToBf16(t.data));
  const beyond = t.data.findIndex((v) => Math.abs(v) > 65504);
  if (beyond >= 0) fail(`${name}: holds ${t.data[beyond]}, beyond float16's range (±65504); use --dtype bf16 or f32`);
  return bytes(f32ToF16(t.data));
}

/** The values a tensor keeps when stored as `dtype` (float32 itself when it is float32). */
export function storedAs(t: Tensor, dtype: StoredDtype, name: string): Tensor {
  return dtype === 'F32' ? t : { data: decode(dtype, encodeTensor(t, dtype, name)), shape: t.shape };
}

/** A tensor to write as `dtype`, encoded only when the writer reaches it. */
export const encodedTensor = (name: string, shape: readonly number[], read: () => Tensor, dtype: StoredDtype): TensorToWrite => ({ dtype, shape, bytes: () => encodeTensor(read(), dtype, name) });

/**
 * Writes every tensor of a source as one safetensors file (float32 unless `dtype` says otherwise) under its
 * checkpoint name, reading one layer at a time as the writer reaches it (a model larger than memory passes through it).
 */
export function writeSourceSafetensors(path: string, config: ModelConfig, arch: Architecture, source: WeightSource, o: { metadata?: Record<string, string>; dtype?: StoredDtype } = {}): void {
  const dtype = o.dtype ?? 'F32';
  const specs = checkpointTensorSpecs(config, arch);
  let current: { i: number; tensors: Record<string, Tensor> } | null = null;
  const layerTensor = (i: number, key: string): Tensor => {
    if (current?.i !== i) current = { i, tensors: layerTensors(config, source.layer(i) as LayerWeights) };
    return current.tensors[key];
  };
  const lazy = (name: string, shape: readonly number[], read: () => Tensor): [string, TensorToWrite] => [name, encodedTensor(name, shape, read, dtype)];
  const out = new Map<string, TensorToWrite>([lazy(specs.embed.name, specs.embed.shape, () => source.embed())]);
  specs.layers.forEach((layer, i) => {
    for (const [key, spec] of Object.entries(layer)) out.set(...lazy(spec.name, spec.shape, () => layerTensor(i, key)));
  });
  out.set(...lazy(specs.finalNorm.name, specs.finalNorm.shape, () => source.finalNorm()));
  if (specs.lmHead !== null) out.set(...lazy(specs.lmHead.name, specs.lmHead.shape, () => source.lmHead()));
  writeSafetensorsStreaming(path, out, o.metadata ?? {});
}

/** Writes config.json and model.safetensors (float32) into `dir`, each atomically. */
export function writeCheckpoint(dir: string, configJson: Record<string, unknown>, config: ModelConfig, arch: Architecture, weights: ModelWeights): void {
  writeSafetensors(join(dir, 'model.safetensors'), checkpointTensors(config, arch, weights));
  writeJsonAtomic(join(dir, 'config.json'), configJson);
}
