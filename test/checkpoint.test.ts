import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parentArchitecture } from '../src/arch/config.js';
import { toDeciBlockConfigs } from '../src/arch/decilm.js';
import type { Architecture } from '../src/arch/variant.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { llamaConfigJson, randomWeights } from '../src/model/random.js';
import { checkpointTensors, writeCheckpoint } from '../src/model/save.js';
import { writeSafetensors } from '../src/model/safetensors.js';
import { Rng } from '../src/util/rng.js';
import type { Tensor } from '../src/util/tensor.js';
import { configOf, modelDir, SHARED, tempDir } from './support/fixtures.js';

const root = tempDir();
const stories = modelDir('stories260K');
const sizes = { hidden: 16, layers: 2, heads: 4, kvHeads: 2, intermediate: 24, vocab: 11, tied: false };

/** A small random Llama checkpoint on disk, optionally broken by `edit`. */
function smallCheckpoint(name: string, edit: (tensors: Map<string, Tensor>, json: Record<string, unknown>) => void = () => {}): string {
  const dir = join(root, name);
  const json = llamaConfigJson(sizes);
  const config = configOf(sizes);
  const tensors = checkpointTensors(config, parentArchitecture(config), randomWeights(config, parentArchitecture(config), new Rng(1)));
  edit(tensors, json);
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json));
  return dir;
}

function rawSafetensors(path: string, header: Record<string, unknown>, data: Uint8Array): void {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(path, Buffer.concat([len, json, data]));
}

describe('loading a checkpoint', () => {
  it('reads a shared model with the parent architecture', () => {
    const ck = loadCheckpoint(stories);
    expect(ck.architecture).toEqual(parentArchitecture(ck.config));
    expect(ck.weights.lmHead).toBe(ck.weights.embed);
    expect(ck.weights.layers[0].attention.variant.kind).toBe('gqa');
  });

  it('reads an untied checkpoint with its own LM head', () => {
    const ck = loadCheckpoint(smallCheckpoint('untied'));
    expect(ck.weights.lmHead).not.toBe(ck.weights.embed);
    expect(ck.weights.lmHead.shape).toEqual([11, 16]);
  });

  it('reads sharded checkpoints through model.safetensors.index.json', () => {
    const dir = join(root, 'sharded');
    mkdirSync(dir);
    copyFileSync(join(stories, 'config.json'), join(dir, 'config.json'));
    const ck = loadCheckpoint(stories);
    const all = [...checkpointTensors(ck.config, ck.architecture, ck.weights)];
    const half = Math.ceil(all.length / 2);
    const shards = [all.slice(0, half), all.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((entries, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(join(dir, file), new Map(entries));
      for (const [name] of entries) weightMap[name] = file;
    });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    expect(loadCheckpoint(dir).weights).toEqual(ck.weights);
  });

  it('converts a BF16 checkpoint to float32', () => {
    const dir = join(root, 'bf16');
    mkdirSync(dir);
    const ck = loadCheckpoint(stories);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(stories, 'config.json'), 'utf8')), torch_dtype: 'bfloat16' }));
    const header: Record<string, unknown> = {};
    const parts: Uint8Array[] = [];
    let offset = 0;
    for (const [name, t] of checkpointTensors(ck.config, ck.architecture, ck.weights)) {
      const bits = new Uint32Array(Float32Array.from(t.data).buffer);
      const halves = Uint16Array.from(bits, (b) => b >>> 16); // truncate to bfloat16
      header[name] = { dtype: 'BF16', shape: t.shape, data_offsets: [offset, offset + halves.byteLength] };
      offset += halves.byteLength;
      parts.push(new Uint8Array(halves.buffer));
    }
    rawSafetensors(join(dir, 'model.safetensors'), header, Buffer.concat(parts));
    const loaded = loadCheckpoint(dir);
    const w = ck.weights.layers[1].ffn;
    const l = loaded.weights.layers[1].ffn;
    expect([w.variant.kind, l.variant.kind]).toEqual(['swiglu', 'swiglu']);
    const truncated = new Float32Array(new Uint32Array(w.tensors.up.data.buffer.slice(0)).map((b) => b & 0xffff0000).buffer);
    expect(l.tensors.up.data).toEqual(truncated);
  });

  it('reads a DeciLM child with per-layer block_configs and linear/no-op sub-blocks', () => {
    const config = configOf(sizes);
    const arch: Architecture = [
      { attention: { kind: 'linear' }, ffn: { kind: 'swiglu', intermediate: 8 } },
      { attention: { kind: 'gqa', kvHeads: 1 }, ffn: { kind: 'noop' } },
    ];
    const weights = randomWeights(config, arch, new Rng(2));
    const json = { ...llamaConfigJson(sizes), architectures: ['DeciLMForCausalLM'], model_type: 'nemotron-nas', num_key_value_heads: null, intermediate_size: null, block_configs: toDeciBlockConfigs(config, arch) };
    const dir = join(root, 'deci');
    writeCheckpoint(dir, json, config, arch, weights);
    const ck = loadCheckpoint(dir);
    expect(ck.architecture).toEqual(arch);
    expect(ck.weights).toEqual(weights);
  });
});

describe('bad checkpoints get one line naming the file and the problem', () => {
  it('a missing directory or config.json', () => {
    expect(() => loadCheckpoint(join(root, 'nope'))).toThrow(/nope\/config\.json: model config not found/);
  });

  it('a config without weights', () => {
    const dir = join(root, 'no-weights');
    mkdirSync(dir);
    copyFileSync(join(stories, 'config.json'), join(dir, 'config.json'));
    expect(() => loadCheckpoint(dir)).toThrow(/no-weights: no model\.safetensors or model\.safetensors\.index\.json/);
  });

  it('an unsupported architecture', () => {
    const dir = smallCheckpoint('gpt2', (_, json) => (json.architectures = ['GPT2LMHeadModel']));
    expect(() => loadCheckpoint(dir)).toThrow(/gpt2\/config\.json: field "architectures" is \["GPT2LMHeadModel"\]/);
  });

  it('a missing tensor', () => {
    const dir = smallCheckpoint('missing', (t) => t.delete('model.layers.1.mlp.down_proj.weight'));
    expect(() => loadCheckpoint(dir)).toThrow(/missing\/model\.safetensors: tensor "model\.layers\.1\.mlp\.down_proj\.weight" is missing \(needed by layer 1 ffn\)/);
  });

  it('an untied config whose LM head is absent', () => {
    const dir = smallCheckpoint('no-head', (t) => t.delete('lm_head.weight'));
    expect(() => loadCheckpoint(dir)).toThrow(/tensor "lm_head\.weight" is missing \(needed by the LM head/);
  });

  it('a tensor the architecture does not use, instead of dropping it', () => {
    const bias = { data: new Float32Array(16), shape: [16] };
    const dir = smallCheckpoint('extra', (t) => t.set('model.layers.0.self_attn.q_proj.bias', bias));
    expect(() => loadCheckpoint(dir)).toThrow(/extra\/model\.safetensors: tensor "model\.layers\.0\.self_attn\.q_proj\.bias" is not used by a LlamaForCausalLM with this config\.json; Tessera would drop it from the computation/);
    // A Qwen2 checkpoint relabelled as Llama: its 12 q/k/v bias tensors are named, not silently lost.
    const qwen = join(root, 'qwen2-as-llama');
    mkdirSync(qwen);
    const json = JSON.parse(readFileSync(join(SHARED, 'models/tiny-random-qwen2/config.json'), 'utf8'));
    writeFileSync(join(qwen, 'config.json'), JSON.stringify({ ...json, architectures: ['LlamaForCausalLM'], model_type: 'llama' }));
    copyFileSync(join(SHARED, 'models/tiny-random-qwen2/model.safetensors'), join(qwen, 'model.safetensors'));
    expect(() => loadCheckpoint(qwen)).toThrow(/tensor "model\.layers\.\d\.self_attn\.[qkv]_proj\.bias" \(and 11 more\) is not used by a LlamaForCausalLM/);
  });

  it('a tensor of the wrong shape', () => {
    const dir = smallCheckpoint('shape', (t) => t.set('model.layers.0.self_attn.k_proj.weight', { data: new Float32Array(16 * 16), shape: [16, 16] }));
    expect(() => loadCheckpoint(dir)).toThrow(/shape\/model\.safetensors: tensor "model\.layers\.0\.self_attn\.k_proj\.weight" has shape \[16, 16\]; expected \[8, 16\] from config\.json/);
  });

  it('a truncated weights file', () => {
    const dir = smallCheckpoint('truncated');
    const file = join(dir, 'model.safetensors');
    writeFileSync(file, readFileSync(file).subarray(0, 100));
    expect(() => loadCheckpoint(dir)).toThrow(/truncated\/model\.safetensors: truncated or corrupt safetensors header/);
  });

  it('an unsupported dtype', () => {
    const dir = smallCheckpoint('int8');
    const config = configOf(sizes);
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (const [name, t] of checkpointTensors(config, parentArchitecture(config), randomWeights(config, parentArchitecture(config), new Rng(1)))) {
      header[name] = { dtype: 'I8', shape: t.shape, data_offsets: [offset, offset + t.data.length] };
      offset += t.data.length;
    }
    rawSafetensors(join(dir, 'model.safetensors'), header, new Uint8Array(offset));
    expect(() => loadCheckpoint(dir)).toThrow(/int8\/model\.safetensors: tensor "model\.embed_tokens\.weight" has dtype I8; expected one of F32, F16, BF16/);
  });

  it('a shard the index names but the directory lacks', () => {
    const dir = join(root, 'lost-shard');
    mkdirSync(dir);
    copyFileSync(join(stories, 'config.json'), join(dir, 'config.json'));
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'model.embed_tokens.weight': 'model-00001-of-00002.safetensors' } }));
    expect(() => loadCheckpoint(dir)).toThrow(/index\.json: shard "model-00001-of-00002\.safetensors" listed for tensor "model\.embed_tokens\.weight" does not exist/);
  });
});

describe('the weights fingerprint', () => {
  it('changes with any byte of the weights (not only the ends), and is hashed once per file version', async () => {
    const { openCheckpoint } = await import('../src/model/checkpoint.js');
    const { contentHash } = await import('../src/model/content-hash.js');
    const { openSync, closeSync, writeSync, statSync } = await import('node:fs');
    const root = tempDir();
    process.env.TESSERA_CACHE_DIR = join(root, 'cache');
    const dir = join(root, 'copy');
    mkdirSync(dir);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) copyFileSync(join(modelDir('babyllama-tok105-1M'), f), join(dir, f));
    const weights = join(dir, 'model.safetensors');
    const before = openCheckpoint(dir).fingerprint;
    expect(openCheckpoint(dir).fingerprint).toBe(before);
    // Zero 4 bytes in the middle of the file: 2 MiB from either end would not see it.
    const size = statSync(weights).size;
    expect(size).toBeGreaterThan(3 << 20);
    const fd = openSync(weights, 'r+');
    writeSync(fd, Buffer.alloc(4), 0, 4, Math.floor(size / 2));
    closeSync(fd);
    expect(openCheckpoint(dir).fingerprint).not.toBe(before);
    // A library of the parent as it was refuses it now, as does one an earlier Tessera identified by the files' ends.
    const { Run } = await import('../src/run/run.js');
    const { DEFAULT_SPACE } = await import('../src/util/project.js');
    const { TINYSTORIES } = await import('./support/fixtures.js');
    const inputs = { model: dir, space: DEFAULT_SPACE, data: TINYSTORIES, calibTokens: 256, validTokens: 128, seqLen: 64, ranking: 'activation' as const, ridgeGrid: [0.1], seed: 0 };
    const runDir = join(root, 'run');
    const built = Run.create(runDir, inputs);
    const fd2 = openSync(weights, 'r+');
    writeSync(fd2, Buffer.from([1, 2, 3, 4]), 0, 4, Math.floor(size / 3));
    closeSync(fd2);
    expect(() => Run.create(runDir, inputs)).toThrow(/this library was built for another parent/);
    expect(() => Run.open(runDir).parent()).toThrow(/its weights changed since the library/);
    const manifest = JSON.parse(readFileSync(built.paths.manifest, 'utf8'));
    writeFileSync(built.paths.manifest, JSON.stringify({ ...manifest, parent: { ...manifest.parent, weightsFingerprint: 'a1b2' } }));
    expect(() => Run.open(runDir).parent()).toThrow(/built by an earlier Tessera, which identified the parent by its weight files' first and last MiB only/);
    // Hashed once per version: a second look reads the cache.
    let hashed = 0;
    const rd = openSync(weights, 'r');
    contentHash(weights, rd, () => hashed++);
    contentHash(weights, rd, () => hashed++);
    closeSync(rd);
    expect(hashed).toBe(0);
  });
});
