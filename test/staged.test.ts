import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { Architecture } from '../src/arch/variant.js';
import { distributionOn, inMemoryRows, modelDivergence, stagedDivergence, stagedDivergences } from '../src/lm/divergence.js';
import { generationOptions, greedyGenerate } from '../src/lm/generate.js';
import { perplexity } from '../src/lm/perplexity.js';
import { loadCheckpoint, openCheckpoint } from '../src/model/checkpoint.js';
import { randomWeights } from '../src/model/random.js';
import { loadTokenizer } from '../src/model/tokenizer.js';
import { gatherRows, inMemory, withCachedRows } from '../src/model/weights.js';
import { cpuRuntime } from '../src/onnx/runtime.js';
import { DecoderSession } from '../src/onnx/session.js';
import { endBytes, holding, layerBytes, planStages, runStaged, SessionCache, StagedDecoder } from '../src/onnx/staged.js';
import { Rng } from '../src/util/rng.js';
import { maxAbsDiff } from '../src/util/tensor.js';
import { buildLibrary, configOf, modelDir, RUNTIME, tempDir, TINYSTORIES } from './support/fixtures.js';

/** One layer per stage, the head alone: every stage boundary a real model would have, on a tiny one. */
const ONE_LAYER = cpuRuntime(1, 1);

describe('stages: a model run a few layers at a time', () => {
  const config = configOf({ hidden: 16, layers: 4, heads: 4, kvHeads: 2, intermediate: 40, vocab: 50 });
  const arch: Architecture = [
    { attention: { kind: 'gqa', kvHeads: 2 }, ffn: { kind: 'swiglu', intermediate: 40 } },
    { attention: { kind: 'noop' }, ffn: { kind: 'linear' } },
    { attention: { kind: 'linear' }, ffn: { kind: 'noop' } },
    { attention: { kind: 'gqa', kvHeads: 1 }, ffn: { kind: 'swiglu', intermediate: 8 } },
  ];
  const source = inMemory(randomWeights(config, arch, new Rng(3)));
  const bytes = layerBytes(config, source);
  const ends = endBytes(config);

  it('cuts contiguous ranges within the budget, puts the head last, and keeps the stages after any first layer the same', () => {
    const everything = ends.embed + bytes.reduce((a, b) => a + b, 0) + ends.head;
    expect(planStages(config, source, everything)).toEqual([{ from: 0, to: 4, head: true, bytes: everything }]);
    expect(planStages(config, source, 1).map((s) => [s.from, s.to, s.head])).toEqual([[0, 1, false], [1, 2, false], [2, 3, false], [3, 4, false], [4, 4, true]]);
    const budget = ends.embed + bytes[0] + bytes[1];
    const whole = planStages(config, source, budget);
    expect(whole[0]).toMatchObject({ from: 0, to: 2, head: false });
    for (const s of whole) expect(s.from === s.to || s.bytes <= budget || s.to - s.from === 1).toBe(true);
    for (let from = 1; from <= 4; from++) {
      const later = planStages(config, source, budget, from);
      expect(later[0].from).toBe(from);
      // Every stage that starts after `from` is a stage of the whole plan: its session can be reused.
      for (const s of later.slice(1)) expect(whole).toContainEqual(s);
    }
  });

  it('computes the same logits, KL and NLL in stages as in one session, for every variant kind', async () => {
    const ids = Int32Array.from({ length: 3 * 12 }, (_, k) => (k * 7 + 3) % 50);
    const whole = await DecoderSession.create(config, source, {}, RUNTIME);
    const one = (await whole.run({ ids, batch: 3, seq: 12 })).logits!.data;
    await whole.release();
    const windows = { ids, count: 3, range: { file: '', paragraphs: [0, 1] as const, windows: 3, tokens: 36 } };
    const ref = await distributionOn(config, source, windows, 12, RUNTIME);
    const staged = await distributionOn(config, source, windows, 12, ONE_LAYER);
    expect(maxAbsDiff(ref.logprobs, staged.logprobs)).toBeLessThanOrEqual(1e-5);
    // A different model scored against it: the same KL and NLL, staged or not.
    const other = inMemory(randomWeights(config, arch, new Rng(4)));
    const a = await modelDivergence(config, other, ids, ref, RUNTIME);
    const b = await modelDivergence(config, other, ids, ref, ONE_LAYER);
    expect(Math.abs(a.kl - b.kl)).toBeLessThanOrEqual(1e-6);
    expect(Math.abs(a.lmLoss - b.lmLoss)).toBeLessThanOrEqual(1e-6);
    expect(a.kl).toBeGreaterThan(0.01);
    const p1 = await perplexity(config, source, RUNTIME, [Array.from(ids.subarray(0, 12)), Array.from(ids.subarray(12, 20))]);
    const p2 = await perplexity(config, source, ONE_LAYER, [Array.from(ids.subarray(0, 12)), Array.from(ids.subarray(12, 20))]);
    expect(Math.abs(p1.meanNll - p2.meanNll)).toBeLessThanOrEqual(1e-6);
    expect(one.length).toBe(3 * 12 * 50);
  });

  it('generates the same tokens with a K/V cache through a chain of stage sessions', async () => {
    const ck = loadCheckpoint(modelDir('stories260K'));
    const prompt = loadTokenizer(ck.dir).encode('Once upon a time');
    const whole = await StagedDecoder.create(ck.config, ck.source, { logits: 'last' }, RUNTIME);
    const chain = await StagedDecoder.create(ck.config, ck.source, { logits: 'last' }, ONE_LAYER);
    const a = await greedyGenerate(whole, prompt, prompt.length + 24);
    const b = await greedyGenerate(chain, prompt, prompt.length + 24);
    expect(b).toEqual(a);
    // Cached decoding: prefill, then one token at a time, through every stage's cache.
    const cached = await StagedDecoder.create(ck.config, ck.source, { logits: 'last', kvCache: true }, ONE_LAYER);
    const kv = (i: number) => (ck.architecture[i].attention.kind === 'gqa' ? ck.config.numKvHeads : 0);
    let r = await cached.run({ ids: Int32Array.from(prompt), batch: 1, seq: prompt.length }, cached.emptyCache(1, kv));
    const out = [...prompt];
    while (out.length < a.length) {
      const next = r.logits!.data.indexOf(Math.max(...r.logits!.data));
      out.push(next);
      r = await cached.run({ ids: Int32Array.of(next), batch: 1, seq: 1 }, r.present);
    }
    expect(out).toEqual(a);
    // What `generate` and `evaluate` use: K/V buffers appended in place by the fused kernel, through every stage.
    const buffered = await StagedDecoder.create(ck.config, ck.source, generationOptions(ck.config), ONE_LAYER);
    expect(await greedyGenerate(buffered, prompt, prompt.length + 24, [], ck.architecture)).toEqual(a);
    for (const d of [whole, chain, cached, buffered]) await d.release();
  });

  it('generates through K/V buffers what it generates rerunning the prefix, for a child of every variant kind', async () => {
    // onnxruntime's fused kernel needs head sizes of a multiple of 8: this model's are 8.
    const wide = configOf({ hidden: 32, layers: 4, heads: 4, kvHeads: 2, intermediate: 40, vocab: 50 });
    const source = inMemory(randomWeights(wide, arch, new Rng(5)));
    const prompt = [3, 14, 15, 9, 26];
    const plain = await StagedDecoder.create(wide, source, { logits: 'last' }, ONE_LAYER);
    const buffered = await StagedDecoder.create(wide, source, generationOptions(wide), ONE_LAYER);
    expect(buffered.options.kvBuffer).toBe(true);
    expect(generationOptions(config)).toEqual({ logits: 'last' });
    const expected = await greedyGenerate(plain, prompt, 20);
    expect(expected.length).toBe(20);
    expect(await greedyGenerate(buffered, prompt, 20, [], arch)).toEqual(expected);
    // A stop token ends both alike; and buffers are made afresh for each prompt.
    expect(await greedyGenerate(buffered, prompt, 20, [expected[8]], arch)).toEqual(await greedyGenerate(plain, prompt, 20, [expected[8]]));
    await expect(greedyGenerate(buffered, prompt, 20)).rejects.toThrow(/architecture/);
    for (const d of [plain, buffered]) await d.release();
  });

  it('looks token ids up outside its sessions, from the file row by row, and computes what a graph that embeds them computes', async () => {
    const dir = modelDir('stories260K');
    const ids = Int32Array.from(loadTokenizer(dir).encode('Once upon a time there was a cat'));
    const file = openCheckpoint(dir);
    const inGraph = await DecoderSession.create(file.config, file.source, { logits: 'all' }, RUNTIME);
    const chain = await StagedDecoder.create(file.config, file.source, { logits: 'all' }, ONE_LAYER);
    const a = await inGraph.run({ ids, batch: 1, seq: ids.length });
    const b = await chain.run({ ids, batch: 1, seq: ids.length });
    expect(maxAbsDiff(a.logits!.data, b.logits!.data)).toBeLessThanOrEqual(1e-4);
    expect(a.logits!.data.some((v) => v !== 0)).toBe(true);
    // The rows read from the file are the table's rows, bit for bit.
    const table = file.source.embed();
    const E = file.config.hiddenSize;
    const rows = file.source.embedRows(ids);
    ids.forEach((id, r) => expect(rows.subarray(r * E, (r + 1) * E)).toEqual(table.data.subarray(id * E, (id + 1) * E)));
    expect(() => file.source.embedRows([file.config.vocabSize])).toThrow(RangeError);
    for (const d of [inGraph, chain]) await d.release();
  });

  it('scores several residual streams in one pass through the later layers exactly as each alone, building each stage once', async () => {
    const ids = Int32Array.from({ length: 4 * 12 }, (_, k) => (k * 5 + 1) % 50);
    const windows = { ids, count: 4, range: { file: '', paragraphs: [0, 1] as const, windows: 4, tokens: 48 } };
    const ref = inMemoryRows(await distributionOn(config, source, windows, 12, RUNTIME));
    // The parent's own residual stream entering layer 2, and two perturbations of it, in batches of two windows.
    const E = config.hiddenSize;
    const entering = new Float32Array(48 * E);
    await runStaged(config, source, RUNTIME, [{ ids, batch: 4, seq: 12 }], { logits: 'none', taps: [{ layer: 2, site: 'residual' }] }, () => {}, (_, taps) => entering.set(taps.get('residual.2')!.data));
    const batches = [{ batch: 2, from: 0, to: 24 }, { batch: 2, from: 24, to: 48 }];
    const streams = [entering, entering.map((v, i) => v + 0.3 * Math.sin(i)), entering.map((v) => 1.5 * v)].map((h) => batches.map(({ batch, from, to }) => ({ data: h.subarray(from * E, to * E), shape: [batch, 12, E] })));
    const builds = vi.spyOn(DecoderSession, 'create');
    const together = await stagedDivergences(config, source, ONE_LAYER, streams, batches, ref, { fromLayer: 2 });
    // Stages 2, 3 and the head, once for all three.
    expect(builds).toHaveBeenCalledTimes(3);
    builds.mockRestore();
    for (const [k, input] of streams.entries()) expect(together[k]).toEqual(await stagedDivergence(config, source, ONE_LAYER, input, batches, ref, { fromLayer: 2 }));
    expect(together[0].kl).toBeLessThanOrEqual(1e-6);
    expect(Math.min(together[1].kl, together[2].kl)).toBeGreaterThan(1e-3);
  });

  it('lets one holder of a shared lock work at a time, and frees it when the work fails', async () => {
    const lock = new Int32Array(new SharedArrayBuffer(4));
    let inside = 0;
    let most = 0;
    const work = (ms: number) => holding(lock, async () => {
      most = Math.max(most, ++inside);
      await new Promise((r) => setTimeout(r, ms));
      inside--;
      return ms;
    });
    expect(await Promise.all([work(30), work(10), work(20)])).toEqual([30, 10, 20]);
    expect(most).toBe(1);
    await expect(holding(lock, async () => { throw new Error('failed build'); })).rejects.toThrow('failed build');
    expect(Atomics.load(lock, 0)).toBe(0);
  });

  it('keeps the latest stages a suffix runs through, and gives the same results from them', async () => {
    const V = config.vocabSize;
    const bytes = layerBytes(config, source);
    // Room for the head and the last two layers' stages, not more.
    const cache = new SessionCache(source, endBytes(config).head + bytes[2] + bytes[3]);
    const ids = Int32Array.from({ length: 24 }, (_, i) => (i * 7) % V);
    const hidden = { data: Float32Array.from({ length: 24 * config.hiddenSize }, (_, i) => Math.sin(i)), shape: [2, 12, config.hiddenSize] };
    const run = async (from: number, sessions?: SessionCache) => {
      let logits: Float32Array | undefined;
      await runStaged(config, source, ONE_LAYER, [from === 0 ? { ids, batch: 2, seq: 12 } : hidden], { logits: 'all', fromLayer: from, sessions }, (_, r) => void (logits = r.logits!.data));
      return logits!;
    };
    const builds = vi.spyOn(DecoderSession, 'create');
    for (const from of [0, 1, 2, 3]) {
      const expected = await run(from);
      builds.mockClear();
      expect(await run(from, cache)).toEqual(expected);
      // Stages 2 and 3 and the head (from 4) are kept whatever ran first: after the first run, only stages
      // before 2 are built again (a least-recently-used cache would rebuild every stage of every suffix).
      expect(cache.kept.filter((f) => f >= 2)).toEqual([2, 3, 4]);
      if (from > 0) expect(builds).toHaveBeenCalledTimes(Math.max(0, 2 - from));
    }
    builds.mockRestore();
    expect(cache.kept).toEqual([2, 3, 4]);
    await cache.clear();
    expect(cache.kept).toEqual([]);
  });

  it('builds the same block library one layer per stage as in one session', async () => {
    const root = tempDir();
    const common = { model: modelDir('stories260K'), space: join(import.meta.dirname, '../search-spaces/kv-heads.json'), data: TINYSTORIES, calibTokens: 512, validTokens: 256, seqLen: 32, workers: 1 };
    const whole = await buildLibrary({ ...common, out: join(root, 'whole') });
    const staged = await buildLibrary({ ...common, out: join(root, 'staged'), stageBytes: 1 });
    const a = whole.library.scores();
    const b = staged.library.scores();
    expect(b.map((s) => s.key)).toEqual(a.map((s) => s.key));
    for (const [k, s] of a.entries()) {
      expect(Math.abs(b[k].kl! - s.kl!)).toBeLessThanOrEqual(1e-6 + 1e-4 * s.kl!);
      expect(Math.abs(b[k].nmse - s.nmse)).toBeLessThanOrEqual(1e-5);
    }
    // The activations, needed only while candidates are unfinished, are gone from a complete library.
    expect(() => readFileSync(join(root, 'staged/library/activations/calibration/complete.json'))).toThrow();
  }, 120_000);
});

describe('embedding rows served from memory once read (timing)', () => {
  it('returns the rows the checkpoint holds, reading each token id from its files once', () => {
    const opened = openCheckpoint(modelDir('stories260K'));
    const table = loadCheckpoint(modelDir('stories260K')).weights.embed;
    const read = vi.spyOn(opened.source, 'embedRows');
    const cached = withCachedRows(opened.source);
    const first = [5, 9, 5, 300];
    expect(cached.embedRows(first)).toEqual(gatherRows(table, first));
    expect(read).toHaveBeenCalledTimes(1);
    expect(Array.from(read.mock.calls[0][0])).toEqual([5, 9, 300]);
    // A decode step of tokens already read, and one with a new token: only the new one is read.
    expect(cached.embedRows([9, 300])).toEqual(gatherRows(table, [9, 300]));
    expect(read).toHaveBeenCalledTimes(1);
    expect(cached.embedRows([300, 7])).toEqual(gatherRows(table, [300, 7]));
    expect(Array.from(read.mock.calls[1][0])).toEqual([7]);
    expect(cached.embedRows([])).toHaveLength(0);
  });
});
