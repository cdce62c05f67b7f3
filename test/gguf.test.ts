import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { getLlama, LlamaLogLevel, readGgufFileInfo, type LlamaContextSequence, type Token } from 'node-llama-cpp';
import { afterAll, describe, expect, it } from 'vitest';
import type { Architecture } from '../src/arch/variant.js';
import { parentArchitecture } from '../src/arch/config.js';
import { llamaConfigJson, randomWeights } from '../src/model/random.js';
import { permuteRope } from '../src/export/gguf/deci.js';
import { quantizeQ8_0 } from '../src/export/gguf/quant.js';
import { writeGgufModel } from '../src/export/gguf/write.js';
import { byteLevelAlphabet } from '../src/export/gguf/tokenizer.js';
import { deciConfigJson } from '../src/export/export.js';
import { greedyGenerate } from '../src/lm/generate.js';
import { loadCheckpoint, openCheckpoint, type Checkpoint } from '../src/model/checkpoint.js';
import { readModelConfig } from '../src/model/config.js';
import { loadTokenizer } from '../src/model/tokenizer.js';
import { halfToFloat } from '../src/model/dtype.js';
import { writeCheckpoint } from '../src/model/save.js';
import type { LayerWeights, ModelWeights } from '../src/model/weights.js';
import { DecoderSession } from '../src/onnx/session.js';
import { Rng } from '../src/util/rng.js';
import type { Tensor } from '../src/util/tensor.js';
import { configOf, modelDir, RUNTIME, tempDir } from './support/fixtures.js';

const ROOT = resolve(import.meta.dirname, '..');
const root = tempDir();
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
afterAll(() => llama.dispose());

/** Rows [from, to) of an [rows, cols] matrix; columns [from, to) of one. */
const rows = (t: Tensor, from: number, to: number): Tensor => ({ data: t.data.slice(from * t.shape[1], to * t.shape[1]), shape: [to - from, t.shape[1]] });
const cols = (t: Tensor, n: number): Tensor => ({ data: Float32Array.from({ length: t.shape[0] * n }, (_, k) => t.data[Math.floor(k / n) * t.shape[1] + (k % n)]), shape: [t.shape[0], n] });

/**
 * A child of a shared model in every form llama.cpp's deci architecture computes: fewer KV heads and a narrower FFN
 * (the parent's first heads and channels), a linear attention, a whole layer dropped, a no-op attention beside an
 * FFN — the parent's own weights otherwise — written as an exported child is.
 */
function writeChild(name: string): string {
  const parent = loadCheckpoint(modelDir(name));
  const { config } = parent;
  const D = config.headDim;
  const E = config.hiddenSize;
  const I = config.intermediateSize;
  const rng = new Rng(3);
  const p = parent.weights.layers;
  const gqa = (l: LayerWeights, kv: number): LayerWeights['attention'] => ({ variant: { kind: 'gqa', kvHeads: kv }, tensors: { ...l.attention.tensors, k: rows(l.attention.tensors.k, 0, kv * D), v: rows(l.attention.tensors.v, 0, kv * D) } });
  const swiglu = (l: LayerWeights, width: number): LayerWeights['ffn'] => ({ variant: { kind: 'swiglu', intermediate: width }, tensors: { norm: l.ffn.tensors.norm, gate: rows(l.ffn.tensors.gate, 0, width), up: rows(l.ffn.tensors.up, 0, width), down: cols(l.ffn.tensors.down, width) } });
  const noop = { variant: { kind: 'noop' as const }, tensors: {} };
  const layers: LayerWeights[] = [
    { attention: gqa(p[0], config.numKvHeads), ffn: swiglu(p[0], I) },
    { attention: gqa(p[1], config.numKvHeads / 2), ffn: swiglu(p[1], Math.round(0.6 * I)) },
    { attention: { variant: { kind: 'linear' }, tensors: { norm: p[2].attention.tensors.norm, weight: { data: rng.normalArray(E * E, 0.02), shape: [E, E] } } }, ffn: swiglu(p[2], I) },
    { attention: noop, ffn: noop },
    { attention: noop, ffn: swiglu(p[4], Math.round(0.4 * I)) },
  ];
  const weights: ModelWeights = { ...parent.weights, layers };
  const arch: Architecture = layers.map((l) => ({ attention: l.attention.variant, ffn: l.ffn.variant }));
  const dir = join(root, `${name}-child`);
  writeCheckpoint(dir, deciConfigJson(readModelConfig(parent.dir).raw, config, arch), config, arch, weights);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(parent.dir, f), join(dir, f));
  return dir;
}

/** Tessera's logits [positions, vocabulary] for one sequence, from its ONNX graph. */
async function onnxLogits(model: Checkpoint, ids: readonly number[]): Promise<Float32Array> {
  const session = await DecoderSession.create(model.config, model.source, {}, RUNTIME);
  try {
    return (await session.run({ ids: Int32Array.from(ids), batch: 1, seq: ids.length })).logits!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** llama.cpp's logits at every position (float32 K/V cache, flash attention off), against `expected`: the largest difference. */
async function llamaCppDifference(sequence: LlamaContextSequence, ids: readonly number[], expected: Float32Array, vocab: number): Promise<number> {
  const theirs = await sequence.controlledEvaluate(ids.map((t) => [t as Token, { generateNext: { logits: true } }]));
  let worst = 0;
  theirs.forEach((r, pos) => {
    const byId = [...r!.next.logits!.entries()].sort((a, b) => a[0] - b[0]);
    expect(byId).toHaveLength(vocab);
    for (const [id, logit] of byId) worst = Math.max(worst, Math.abs(logit - expected[pos * vocab + id]));
  });
  return worst;
}

async function withLlamaCpp<T>(path: string, use: (sequence: LlamaContextSequence) => Promise<T>): Promise<T> {
  const model = await llama.loadModel({ modelPath: path });
  const context = await model.createContext({ contextSize: 256, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
  try {
    return await use(context.getSequence());
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

describe('GGUF export for llama.cpp', () => {
  it.each(['stories260K', 'babyllama-tok105-1M'])("%s: a child with every deci layer kind runs in llama.cpp (node-llama-cpp) to Tessera's logits (≤ 1e-3) and greedy ids", async (name) => {
    const child = openCheckpoint(writeChild(name));
    const path = join(root, `${name}.gguf`);
    writeGgufModel(path, child, 'F32');

    const info = await readGgufFileInfo(path, { readTensorInfo: true, sourceType: 'filesystem' });
    expect(info.metadata.general.architecture).toBe('deci');
    const deci = (info.metadata as unknown as { deci: { attention: Record<string, unknown>; feed_forward_length: number[] } }).deci;
    expect(deci.attention.head_count).toEqual([8, 8, 8, 0, 0]);
    expect(deci.attention.head_count_kv).toEqual([4, 2, 0, 0, 0]);
    expect(deci.feed_forward_length).toEqual(child.architecture.map((b) => (b.ffn.kind === 'swiglu' ? b.ffn.intermediate : 0)));
    const E = child.config.hiddenSize;
    expect(info.tensorInfo!.find((t) => t.name === 'blk.2.attn_output.weight')!.dimensions).toEqual([E, E]);
    expect(info.tensorInfo!.some((t) => t.name.startsWith('blk.3.'))).toBe(false);

    const V = child.config.vocabSize;
    const ids = Array.from({ length: 24 }, (_, k) => (k === 0 ? 1 : (k * 37 + 11) % V));
    const ours = await onnxLogits(child, ids);
    const prompt = [1, ...loadTokenizer(child.dir).encode('Once upon a time, there was a', false)];
    const last = await DecoderSession.create(child.config, child.source, { logits: 'last' }, RUNTIME);
    const expected = (await greedyGenerate(last, prompt, prompt.length + 16)).slice(prompt.length);
    await last.release();
    await withLlamaCpp(path, async (sequence) => {
      expect(await llamaCppDifference(sequence, ids, ours, V)).toBeLessThanOrEqual(1e-3);
      // Its vocabulary splits text as HuggingFace's tokenizer does (merge ranks as SentencePiece scores; babyllama's
      // characters through llama.cpp's Unigram tokenizer, its newline an unknown character).
      const text = 'Once upon a time, there was a little girl named Lily. She loved to play outside!\nThe end.';
      const hf = loadTokenizer(child.dir);
      expect(sequence.model.tokenize(text)).toEqual(hf.encode(text, false));
      if (name === 'babyllama-tok105-1M') {
        // The one difference written in the exporter: a run of unknown characters is one <unk> there, one each in HF.
        expect(hf.encode('a\n\nb', false)).toEqual([3, 5, 0, 0, 23]);
        expect(sequence.model.tokenize('a\n\nb')).toEqual([3, 5, 0, 23]);
      }
      // Greedy continuations of the same prompt, token for token.
      await sequence.clearHistory();
      const generated: number[] = [];
      for await (const t of sequence.evaluate(prompt as Token[], { temperature: 0, yieldEogToken: true })) {
        generated.push(t);
        if (generated.length === expected.length) break;
      }
      expect(generated).toEqual(expected);
    });
  });

  it("llama3 RoPE scaling (as rope_freqs) on HF's tiny Llama 3 checkpoints; a byte-level BPE vocabulary (gpt2) with merges: Tessera's logits (≤ 1e-3)", async () => {
    const check = async (model: Checkpoint, path: string) => {
      writeGgufModel(path, model, 'F32');
      const ids = Array.from({ length: 20 }, (_, k) => (k * 53 + 7) % model.config.vocabSize);
      const ours = await onnxLogits(model, ids);
      expect(await withLlamaCpp(path, (sequence) => llamaCppDifference(sequence, ids, ours, model.config.vocabSize)), path).toBeLessThanOrEqual(1e-3);
      return (await readGgufFileInfo(path, { sourceType: 'filesystem' })).metadata as unknown as { tokenizer: { ggml: Record<string, unknown> } };
    };
    for (const name of ['tiny-random-llama3', 'tiny-random-llama3-smoothrope']) await check(openCheckpoint(modelDir(name)), join(root, `${name}.gguf`));

    // A byte-level tokenizer (GPT-2's 256 byte characters, one merge) over random weights of its vocabulary's size.
    const dir = join(root, 'byte-level');
    const bytes = byteLevelAlphabet();
    const vocab = Object.fromEntries([...bytes, 'Ġt', '<|endoftext|>'].map((t, i) => [t, i]));
    const sizes = { hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 96, vocab: Object.keys(vocab).length, tied: true };
    const config = configOf(sizes);
    const arch = parentArchitecture(config);
    writeCheckpoint(dir, llamaConfigJson(sizes), config, arch, randomWeights(config, arch, new Rng(5)));
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({
      model: { type: 'BPE', vocab, merges: [['Ġ', 't']], byte_fallback: false },
      added_tokens: [{ id: vocab['<|endoftext|>'], content: '<|endoftext|>', special: true }],
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    }));
    const tokenizer = (await check(openCheckpoint(dir), join(root, 'byte-level.gguf'))).tokenizer.ggml;
    expect([tokenizer.model, tokenizer.pre, tokenizer.merges]).toEqual(['gpt2', 'gpt-2', ['Ġ t']]);
  });

  it('Q8_0 as ggml quantises (scale amax/127 in float16, values rounded half away from zero); rows not a multiple of 32 stay float16', async () => {
    const x = Float32Array.from({ length: 64 }, (_, i) => (i === 5 ? 2.5 * (4 / 127) : i === 6 ? -2.5 * (4 / 127) : Math.sin(i) * 4));
    x[0] = 4;
    const q = quantizeQ8_0(x);
    expect(q.length).toBe(68);
    const view = new DataView(q.buffer);
    const d = halfToFloat(view.getUint16(0, true));
    expect(d).toBeCloseTo(4 / 127, 5);
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[j] * Math.fround(1 / Math.fround(4 / 127)));
      expect(view.getInt8(2 + j), `${j}`).toBe(Math.sign(v) * Math.round(Math.abs(v)));
      expect(Math.abs(view.getInt8(2 + j) * d - x[j])).toBeLessThanOrEqual(d / 2 + 1e-6);
    }
    const child = openCheckpoint(writeChild('stories260K'));
    const path = join(root, 'q8.gguf');
    writeGgufModel(path, child, 'Q8_0');
    writeGgufModel(join(root, 'f32.gguf'), child, 'F32');
    const info = await readGgufFileInfo(path, { readTensorInfo: true, sourceType: 'filesystem' });
    const type = (n: string) => info.tensorInfo!.find((t) => t.name === n)!.ggmlType;
    expect([type('blk.0.ffn_gate.weight'), type('blk.0.ffn_down.weight'), type('blk.0.attn_norm.weight')]).toEqual([8, 1, 0]); // down's rows are 172 long
    expect(statSync(path).size).toBeLessThan(0.4 * statSync(join(root, 'f32.gguf')).size);
    const model = await llama.loadModel({ modelPath: path });
    await model.dispose();
  });

  it("permutes Q and K rows within each head from rotate-half to ggml's interleaved pairs", () => {
    // Two heads of dimension 4, one column: rows [h0: a b c d | h1: e f g h] → [a c b d | e g f h].
    const t = permuteRope({ data: Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), shape: [8, 1] }, 2);
    expect(Array.from(t.data)).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
  });

  it('tessera export --format gguf writes a model directory as GGUF; a child llama.cpp would compute wrong is refused in one line', () => {
    const cli = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'bin/tessera.js'), 'export', ...args], { encoding: 'utf8' });
    const out = join(root, 'parent.gguf');
    const ok = cli(modelDir('stories260K'), '--format', 'gguf', '--out', out, '--dtype', 'q8_0');
    expect(ok.status, ok.stderr).toBe(0);
    expect(existsSync(out)).toBe(true);
    // Attention kept beside a no-op FFN: llama.cpp drops the attention's output there.
    const parent = loadCheckpoint(modelDir('stories260K'));
    const arch: Architecture = parent.architecture.map((b, i) => (i === 1 ? { ...b, ffn: { kind: 'noop' } } : b));
    const weights: ModelWeights = { ...parent.weights, layers: parent.weights.layers.map((l, i) => (i === 1 ? { ...l, ffn: { variant: { kind: 'noop' }, tensors: {} } } : l)) };
    const bad = join(root, 'bad');
    writeCheckpoint(bad, deciConfigJson(readModelConfig(parent.dir).raw, parent.config, arch), parent.config, arch, weights);
    copyFileSync(join(parent.dir, 'tokenizer.json'), join(bad, 'tokenizer.json'));
    const r = cli(bad, '--format', 'gguf');
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(/bad: llama\.cpp would not run it right: layer 1: llama\.cpp drops the attention's output where the FFN is a no-op/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(`${bad}.gguf`)).toBe(false);
    expect(cli(bad, '--dtype', 'q8_0').stderr).toMatch(/option --dtype: q8_0 is a GGUF type; use it with --format gguf/);
    // A SentencePiece BPE with merges but without byte fallback or a newline: llama.cpp would end the process on it.
    const noBytes = join(root, 'no-bytes');
    mkdirSync(noBytes);
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(modelDir('stories260K'), f), join(noBytes, f));
    const tokenizer = JSON.parse(readFileSync(join(modelDir('stories260K'), 'tokenizer.json'), 'utf8'));
    tokenizer.model.byte_fallback = false;
    for (const tok of Object.keys(tokenizer.model.vocab)) if (/^<0x[0-9A-F]{2}>$/.test(tok)) delete tokenizer.model.vocab[tok];
    writeFileSync(join(noBytes, 'tokenizer.json'), JSON.stringify(tokenizer));
    const refused = cli(noBytes, '--format', 'gguf', '--out', join(root, 'no-bytes.gguf'));
    expect(refused.stderr.trim()).toMatch(/no-bytes\/tokenizer\.json: has no byte fallback and no token for a newline \("<0x0A>" or "\\n"\), and is not a character-level vocabulary/);
    expect(existsSync(join(root, 'no-bytes.gguf'))).toBe(false);
  });
});
