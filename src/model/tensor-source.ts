import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fail } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';
import { isObject, readJsonFile } from './json.js';
import { SafetensorsFile, type SafetensorsEntry } from './safetensors.js';
import { sha256 } from '../util/hash.js';

/** Where a checkpoint's tensors live: one safetensors file, or shards listed by an index. */
export interface TensorSource {
  /** Every weight file. */
  readonly files: readonly string[];
  /** Identifies the weights: each file's size and a hash of all its bytes (cached per file version); see `SafetensorsFile.fingerprint`. */
  fingerprint(): string;
  /** The file a tensor is (or would be) in, for error messages. */
  fileOf(name: string): string;
  entry(name: string): SafetensorsEntry | undefined;
  /** Every tensor name the checkpoint holds. */
  names(): string[];
  read(name: string): Tensor;
  /** Rows of a 2-D tensor, float32 [rows.length, columns] (see `SafetensorsFile.readRows`). */
  readRows(name: string, rows: ArrayLike<number>): Float32Array;
  close(): void;
}

/**
 * The prefix of a fingerprint over every byte of the weights. Earlier Tessera versions hashed each file's first and
 * last MiB only (a change in between went unseen); their fingerprints lack it, so their libraries are named as such.
 */
export const CONTENT_FINGERPRINT = 'content:';

export function openTensorSource(dir: string): TensorSource {
  const single = join(dir, 'model.safetensors');
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(single)) return singleFile(SafetensorsFile.open(single));
  if (existsSync(index)) return sharded(index);
  fail(`${dir}: no model.safetensors or model.safetensors.index.json (Tessera reads safetensors checkpoints)`);
}

function singleFile(file: SafetensorsFile): TensorSource {
  return {
    files: [file.path],
    fingerprint: () => `${CONTENT_FINGERPRINT}${sha256(file.fingerprint())}`,
    fileOf: () => file.path,
    entry: (name) => file.entries.get(name),
    names: () => [...file.entries.keys()],
    read: (name) => file.read(name),
    readRows: (name, rows) => file.readRows(name, rows),
    close: () => file.close(),
  };
}

function sharded(indexPath: string): TensorSource {
  const index = readJsonFile(indexPath, 'safetensors index');
  const map = isObject(index) ? index.weight_map : undefined;
  if (!isObject(map) || !Object.values(map).every((v) => typeof v === 'string')) {
    fail(`${indexPath}: field "weight_map" must map tensor names to shard file names`);
  }
  const weightMap = map as Record<string, string>;
  const shards = new Map<string, SafetensorsFile>();
  const shardFile = (fileName: string, forTensor?: string): SafetensorsFile => {
    let f = shards.get(fileName);
    if (f === undefined) {
      const path = join(dirname(indexPath), fileName);
      if (!existsSync(path)) fail(`${indexPath}: shard "${fileName}" listed${forTensor ? ` for tensor "${forTensor}"` : ''} does not exist`);
      f = SafetensorsFile.open(path);
      shards.set(fileName, f);
    }
    return f;
  };
  const shard = (name: string): SafetensorsFile | undefined => (weightMap[name] === undefined ? undefined : shardFile(weightMap[name], name));
  return {
    files: [...new Set(Object.values(weightMap))].map((f) => join(dirname(indexPath), f)),
    fingerprint: () => `${CONTENT_FINGERPRINT}${sha256([...new Set(Object.values(weightMap))].map((f) => shardFile(f).fingerprint()).join('|'))}`,
    fileOf: (name) => (weightMap[name] !== undefined ? join(dirname(indexPath), weightMap[name]) : indexPath),
    names: () => Object.keys(weightMap),
    entry: (name) => {
      const f = shard(name);
      const e = f?.entries.get(name);
      if (f !== undefined && e === undefined) fail(`${f.path}: tensor "${name}" is listed in the index but missing from the shard`);
      return e;
    },
    read: (name) => {
      const f = shard(name);
      if (f === undefined) fail(`${indexPath}: tensor "${name}" is missing from weight_map`);
      return f.read(name);
    },
    readRows: (name, rows) => {
      const f = shard(name);
      if (f === undefined) fail(`${indexPath}: tensor "${name}" is missing from weight_map`);
      return f.readRows(name, rows);
    },
    close: () => shards.forEach((f) => f.close()),
  };
}
