import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { Architecture } from '../src/arch/variant.js';
import { exportArchitecture } from '../src/export/export.js';
import type { ChildProvenance } from '../src/export/provenance.js';
import { ChildAssembler } from '../src/search/child.js';
import { ropeInverseFrequencies } from '../src/arch/rope.js';
import { greedyGenerate } from '../src/lm/generate.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { DecoderSession } from '../src/onnx/session.js';
import { StagedDecoder } from '../src/onnx/staged.js';
import { cpuRuntime } from '../src/onnx/runtime.js';
import { referenceForward } from '../src/reference/forward.js';
import { maxAbsDiff } from '../src/util/tensor.js';
import { buildLibrary, RUNTIME, SHARED, tempDir, TINYSTORIES } from './support/fixtures.js';

const ROOT = resolve(import.meta.dirname, '..');

/**
 * Tiny random checkpoints of each family, saved by HuggingFace transformers, with the logits, NLL and greedy
 * ids its own modeling code computed (reference.json beside each checkpoint).
 */
const FAMILIES = ['tiny-random-llama3', 'tiny-random-llama3-smoothrope', 'tiny-random-llama3-bf16-sharded', 'tiny-random-mistral', 'tiny-random-qwen2', 'tiny-random-qwen3'];

interface Reference {
  probe_ids: number[];
  probe_logits_first: number[];
  probe_logits_last: number[];
  mean_nll: number;
  greedy_ids: number[];
  long_probe_ids: number[];
  long_probe_logits_last: number[];
  rope_inv_freq: number[];
}

function meanNll(logits: Float32Array, ids: readonly number[], vocab: number): number {
  let total = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = logits.subarray(t * vocab, (t + 1) * vocab);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    total += lse - row[ids[t + 1]];
  }
  return total / (ids.length - 1);
}

describe('each family against HuggingFace transformers\' own outputs', () => {
  for (const name of FAMILIES) {
    describe(name, () => {
      const dir = join(SHARED, 'models', name);
      const ref: Reference = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8'));
      const ck = loadCheckpoint(dir);
      const V = ck.config.vocabSize;

      it('computes HF\'s RoPE frequencies', () => {
        const inv = ropeInverseFrequencies(ck.config);
        expect(maxAbsDiff(inv, ref.rope_inv_freq) / Math.max(...ref.rope_inv_freq)).toBeLessThan(1e-6);
      });

      it('gives HF\'s probe logits (≤ 1e-4) and NLL, in the standard and the fused-attention ONNX graph and in the reference forward', async () => {
        const T = ref.probe_ids.length;
        for (const fusedAttention of [false, true]) {
          const session = await DecoderSession.create(ck.config, ck.weights, { fusedAttention }, RUNTIME);
          const run = async (ids: number[]) => (await session.run({ ids: Int32Array.from(ids), batch: 1, seq: ids.length })).logits!.data;
          const logits = await run(ref.probe_ids);
          expect(maxAbsDiff(logits.subarray(0, V), ref.probe_logits_first)).toBeLessThanOrEqual(1e-4);
          expect(maxAbsDiff(logits.subarray((T - 1) * V), ref.probe_logits_last)).toBeLessThanOrEqual(1e-4);
          expect(meanNll(logits, ref.probe_ids, V)).toBeCloseTo(ref.mean_nll, 4);
          const long = await run(ref.long_probe_ids);
          expect(maxAbsDiff(long.subarray((ref.long_probe_ids.length - 1) * V), ref.long_probe_logits_last)).toBeLessThanOrEqual(1e-4);
          await session.release();
        }
        const plain = referenceForward(ck.config, ck.weights, ref.probe_ids).logits;
        expect(maxAbsDiff(plain[0], ref.probe_logits_first)).toBeLessThanOrEqual(1e-4);
        expect(maxAbsDiff(plain[T - 1], ref.probe_logits_last)).toBeLessThanOrEqual(1e-4);
      });

      it('generates HF\'s greedy ids, also one token at a time through the fused kernel\'s K/V cache', async () => {
        const session = await DecoderSession.create(ck.config, ck.weights, { logits: 'last' }, RUNTIME);
        const ids = await greedyGenerate(session, ref.probe_ids, ref.probe_ids.length + ref.greedy_ids.length);
        await session.release();
        expect(ids.slice(ref.probe_ids.length)).toEqual(ref.greedy_ids);
        const cached = await DecoderSession.create(ck.config, ck.weights, { logits: 'last', kvCache: true, fusedAttention: true }, RUNTIME);
        const kv = (i: number) => (ck.architecture[i].attention.kind === 'gqa' ? ck.config.numKvHeads : 0);
        let r = await cached.run({ ids: Int32Array.from(ref.probe_ids), batch: 1, seq: ref.probe_ids.length }, cached.emptyCache(1, kv));
        const out: number[] = [];
        while (out.length < ref.greedy_ids.length) {
          out.push(r.logits!.data.indexOf(Math.max(...r.logits!.data)));
          r = await cached.run({ ids: Int32Array.of(out[out.length - 1]), batch: 1, seq: 1 }, r.present);
        }
        await cached.release();
        expect(out).toEqual(ref.greedy_ids);
        // The same through K/V buffers the kernel appends to in place, a layer per stage (each stage its own session).
        const staged = await StagedDecoder.create(ck.config, ck.weights, { logits: 'last', kvCache: true, fusedAttention: true, kvBuffer: true }, cpuRuntime(1, 1));
        const buffers = await staged.kvBuffers(1, ref.probe_ids.length + ref.greedy_ids.length, kv);
        let b = await staged.run({ ids: Int32Array.from(ref.probe_ids), batch: 1, seq: ref.probe_ids.length }, buffers);
        const inPlace: number[] = [];
        while (inPlace.length < ref.greedy_ids.length) {
          inPlace.push(b.logits!.data.indexOf(Math.max(...b.logits!.data)));
          if (inPlace.length < ref.greedy_ids.length) b = await staged.run({ ids: Int32Array.of(inPlace[inPlace.length - 1]), batch: 1, seq: 1 }, buffers);
        }
        expect(buffers.length).toBe(ref.probe_ids.length + ref.greedy_ids.length - 1);
        await expect(staged.run({ ids: Int32Array.of(1, 2), batch: 1, seq: 2 }, buffers)).rejects.toThrow(/K\/V buffers hold 36 positions; 35 \+ 2 do not fit/);
        await staged.release();
        expect(inPlace).toEqual(ref.greedy_ids);
      });
    });
  }
});

describe('a heterogeneous child of each family, with every variant kind, exported and loaded back', () => {
  for (const name of ['tiny-random-qwen2', 'tiny-random-qwen3', 'tiny-random-mistral']) {
    it(name, async () => {
      const root = tempDir();
      const { run, library } = await buildLibrary({ model: join(SHARED, 'models', name), space: join(ROOT, 'search-spaces/puzzle.json'), data: TINYSTORIES, out: join(root, 'run'), calibTokens: 512, validTokens: 256, seqLen: 32, workers: 1 });
      const parent = run.parent();
      const width = parent.config.intermediateSize;
      const architecture: Architecture = [
        { attention: { kind: 'gqa', kvHeads: 1 }, ffn: { kind: 'swiglu', intermediate: width / 2 } },
        { attention: { kind: 'linear' }, ffn: { kind: 'linear' } },
        { attention: { kind: 'noop' }, ffn: { kind: 'noop' } },
        { attention: { kind: 'gqa', kvHeads: parent.config.numKvHeads }, ffn: { kind: 'swiglu', intermediate: width } },
      ];
      const provenance: ChildProvenance = { format: 'tessera-child', version: 1, parent: parent.dir, run: run.dir, solution: 'every-kind', specSha256: '', hardware: '', data: run.manifest.data };
      const out = join(root, 'child');
      exportArchitecture(parent, library, architecture, out, provenance);
      const back = loadCheckpoint(out);
      expect(back.architecture).toEqual(architecture);
      expect(back.config.qkvBias).toBe(parent.config.qkvBias);
      expect(back.config.qkNorm).toBe(parent.config.qkNorm);
      const assembled = new ChildAssembler(parent.config, parent.source, library).weights(architecture);
      const ids = Int32Array.from({ length: 2 * 24 }, (_, k) => (k * 37 + 11) % parent.config.vocabSize);
      const logits = async (config: typeof parent.config, weights: typeof assembled) => {
        const session = await DecoderSession.create(config, weights, {}, RUNTIME);
        const r = (await session.run({ ids, batch: 2, seq: 24 })).logits!.data;
        await session.release();
        return r;
      };
      const before = await logits(parent.config, assembled);
      const fusedSession = await DecoderSession.create(parent.config, assembled, { fusedAttention: true }, RUNTIME);
      const fused = (await fusedSession.run({ ids, batch: 2, seq: 24 })).logits!.data;
      expect(maxAbsDiff(fused, before)).toBeLessThanOrEqual(1e-4);
      await fusedSession.release();
      // Decoded a token at a time through K/V buffers written in place, a layer per stage (the no-op and linear
      // layers' stages cache nothing): each step's logits are the whole forward's at that position.
      const kvHeads = (i: number) => (architecture[i].attention.kind === 'gqa' ? (architecture[i].attention as { kvHeads: number }).kvHeads : 0);
      const stepwise = await StagedDecoder.create(parent.config, assembled, { logits: 'last', kvCache: true, fusedAttention: true, kvBuffer: true }, cpuRuntime(1, 1));
      const buffers = await stepwise.kvBuffers(2, 24, kvHeads);
      const V = parent.config.vocabSize;
      const column = (t0: number, t1: number) => Int32Array.from({ length: 2 * (t1 - t0) }, (_, k) => ids[Math.floor(k / (t1 - t0)) * 24 + t0 + (k % (t1 - t0))]);
      let step = await stepwise.run({ ids: column(0, 20), batch: 2, seq: 20 }, buffers);
      for (let t = 20; ; t++) {
        for (let row = 0; row < 2; row++) expect(maxAbsDiff(step.logits!.data.subarray(row * V, (row + 1) * V), before.subarray((row * 24 + t - 1) * V, (row * 24 + t) * V)), `position ${t - 1}`).toBeLessThanOrEqual(1e-4);
        if (t === 24) break;
        step = await stepwise.run({ ids: column(t, t + 1), batch: 2, seq: 1 }, buffers);
      }
      await stepwise.release();
      expect(maxAbsDiff(before, await logits(back.config, back.weights))).toBe(0);
      const standalone = await ort.InferenceSession.create(join(out, 'model.onnx'));
      const r = await standalone.run({ input_ids: new ort.Tensor('int32', ids, [2, 24]) });
      // model.onnx is the fused-attention graph.
      expect(maxAbsDiff(r.logits.data as Float32Array, fused)).toBeLessThanOrEqual(1e-5);
      const plain = referenceForward(back.config, back.weights, Array.from(ids.subarray(0, 24))).logits;
      expect(maxAbsDiff(plain[23], before.subarray(23 * parent.config.vocabSize, 24 * parent.config.vocabSize))).toBeLessThanOrEqual(1e-4);
    }, 120_000);
  }
});
