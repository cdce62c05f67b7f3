import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../src/arch/config.js';
import type { Architecture } from '../src/arch/variant.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { randomWeights } from '../src/model/random.js';
import type { ModelWeights } from '../src/model/weights.js';
import { subBlockTaps, type TapPoint, type TapSite } from '../src/onnx/emit.js';
import { DecoderSession, tapOf } from '../src/onnx/session.js';

import { referenceForward } from '../src/reference/forward.js';
import { Rng } from '../src/util/rng.js';
import { maxAbsDiff } from '../src/util/tensor.js';
import { configOf, modelDir, SHARED_MODELS, RUNTIME } from './support/fixtures.js';

const residuals = (layers: number[]): TapPoint[] => layers.map((layer) => ({ layer, site: 'residual' }));
const TOLERANCE = 1e-4;

function randomIds(rng: Rng, n: number, vocab: number): number[] {
  return Array.from({ length: n }, () => rng.int(vocab));
}

/** Max |Δlogit| between the ONNX graph and the plain-TypeScript reference on one sequence. */
async function logitGap(config: ModelConfig, weights: ModelWeights, ids: number[]): Promise<number> {
  const session = await DecoderSession.create(config, weights, {}, RUNTIME);
  const { logits } = await session.run({ ids: Int32Array.from(ids), batch: 1, seq: ids.length });
  await session.release();
  const ref = referenceForward(config, weights, ids);
  const flat = new Float32Array(ids.length * config.vocabSize);
  ref.logits.forEach((row, t) => flat.set(row, t * config.vocabSize));
  return maxAbsDiff(logits!.data, flat);
}

/** A child in which every variant kind appears, on a config whose heads × head_dim ≠ hidden. */
const sizes = { hidden: 24, layers: 6, heads: 4, kvHeads: 2, headDim: 8, intermediate: 40, vocab: 37, tied: false };
const everyKind: Architecture = [
  { attention: { kind: 'gqa', kvHeads: 2 }, ffn: { kind: 'swiglu', intermediate: 40 } },
  { attention: { kind: 'gqa', kvHeads: 1 }, ffn: { kind: 'linear' } },
  { attention: { kind: 'linear' }, ffn: { kind: 'noop' } },
  { attention: { kind: 'noop' }, ffn: { kind: 'swiglu', intermediate: 7 } },
  { attention: { kind: 'gqa', kvHeads: 4 }, ffn: { kind: 'swiglu', intermediate: 16 } },
  { attention: { kind: 'noop' }, ffn: { kind: 'noop' } },
];

describe('ONNX decoder graph vs the plain-TypeScript reference', () => {
  for (const name of SHARED_MODELS) {
    it(`agrees on ${name} (max |Δlogit| ≤ ${TOLERANCE})`, async () => {
      const ck = loadCheckpoint(modelDir(name));
      const ids = [1, ...randomIds(new Rng(7), 40, ck.config.vocabSize)];
      expect(await logitGap(ck.config, ck.weights, ids)).toBeLessThanOrEqual(TOLERANCE);
    });
  }

  it('agrees on a random heterogeneous child with every variant kind', async () => {
    const config = configOf(sizes);
    const weights = randomWeights(config, everyKind, new Rng(3));
    expect(await logitGap(config, weights, randomIds(new Rng(4), 33, config.vocabSize))).toBeLessThanOrEqual(TOLERANCE);
  });

  it('agrees with llama3 rope_scaling and with a Mistral sliding window', async () => {
    const llama3 = configOf({ ...sizes, ropeTheta: 500000, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } });
    const mistral = configOf({ ...sizes, architecture: 'MistralForCausalLM', slidingWindow: 5 });
    for (const config of [llama3, mistral]) {
      const weights = randomWeights(config, everyKind, new Rng(5));
      expect(await logitGap(config, weights, randomIds(new Rng(6), 29, config.vocabSize))).toBeLessThanOrEqual(TOLERANCE);
    }
  });
});

describe('decoder sessions', () => {
  const config = configOf(sizes);
  const weights = randomWeights(config, everyKind, new Rng(8));
  const rng = new Rng(9);
  const batch = 3;
  const seq = 12;
  const ids = Int32Array.from(randomIds(rng, batch * seq, config.vocabSize));
  const V = config.vocabSize;
  const E = config.hiddenSize;

  it('give each row of a batch the logits it gets alone', async () => {
    const session = await DecoderSession.create(config, weights, {}, RUNTIME);
    const together = (await session.run({ ids, batch, seq })).logits!;
    expect(together.shape).toEqual([batch, seq, V]);
    for (let b = 0; b < batch; b++) {
      const alone = (await session.run({ ids: ids.slice(b * seq, (b + 1) * seq), batch: 1, seq })).logits!;
      expect(maxAbsDiff(alone.data, together.data.subarray(b * seq * V, (b + 1) * seq * V))).toBeLessThanOrEqual(1e-5);
    }
  });

  it('output the last position only when asked', async () => {
    const all = (await (await DecoderSession.create(config, weights, {}, RUNTIME)).run({ ids, batch, seq })).logits!;
    const last = (await (await DecoderSession.create(config, weights, { logits: 'last' }, RUNTIME)).run({ ids, batch, seq })).logits!;
    expect(last.shape).toEqual([batch, V]);
    for (let b = 0; b < batch; b++) {
      const row = all.data.subarray((b * seq + seq - 1) * V, (b * seq + seq) * V);
      expect(maxAbsDiff(last.data.subarray(b * V, (b + 1) * V), row)).toBeLessThanOrEqual(1e-6);
    }
  });

  it('expose residual streams and sub-block inputs/outputs that add up and match the reference', async () => {
    const layers = everyKind.map((_, i) => i);
    const taps = [...layers.flatMap(subBlockTaps), { layer: everyKind.length, site: 'residual' as const }];
    const session = await DecoderSession.create(config, weights, { taps }, RUNTIME);
    const r = await session.run({ ids, batch, seq });
    const tap = (layer: number, site: TapSite) => tapOf(r, { layer, site });
    const ref = referenceForward(config, weights, Array.from(ids.subarray(0, seq)));
    for (const i of [...layers, everyKind.length]) {
      const h = tap(i, 'residual')!;
      expect(h.shape).toEqual([batch, seq, E]);
      const refRows = new Float32Array(seq * E);
      ref.hidden[i].forEach((row, t) => refRows.set(row, t * E));
      expect(maxAbsDiff(h.data.subarray(0, seq * E), refRows)).toBeLessThanOrEqual(TOLERANCE);
    }
    for (const i of layers) {
      const block = everyKind[i];
      const [attnOut, ffnIn, ffnOut] = [tap(i, 'attention.output'), tap(i, 'ffn.input')!, tap(i, 'ffn.output')];
      expect(attnOut === undefined).toBe(block.attention.kind === 'noop');
      expect(ffnOut === undefined).toBe(block.ffn.kind === 'noop');
      const mid = tap(i, 'residual')!.data.map((v, k) => v + (attnOut?.data[k] ?? 0));
      expect(maxAbsDiff(mid, ffnIn.data)).toBeLessThanOrEqual(1e-6);
      const next = ffnIn.data.map((v, k) => v + (ffnOut?.data[k] ?? 0));
      expect(maxAbsDiff(next, tap(i + 1, 'residual')!.data)).toBeLessThanOrEqual(1e-6);
    }
  });

  it('run layers i..L from a given residual stream to the same logits (partial graphs)', async () => {
    const full = await DecoderSession.create(config, weights, { taps: residuals([0, 1, 2, 3, 4, 5]) }, RUNTIME);
    const r = await full.run({ ids, batch, seq });
    for (const from of [1, 3, 5]) {
      const partial = await DecoderSession.create(config, weights, { fromLayer: from }, RUNTIME);
      const out = await partial.run(tapOf(r, { layer: from, site: 'residual' })!);
      expect(maxAbsDiff(out.logits!.data, r.logits!.data)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('stop at a layer boundary without logits', async () => {
    const full = await DecoderSession.create(config, weights, { taps: residuals([1, 4]) }, RUNTIME);
    const r = await full.run({ ids, batch, seq });
    const middle = await DecoderSession.create(config, weights, { fromLayer: 1, toLayer: 4 }, RUNTIME);
    const out = await middle.run(tapOf(r, { layer: 1, site: 'residual' })!);
    expect(out.logits).toBeUndefined();
    expect(maxAbsDiff(tapOf(out, { layer: 4, site: 'residual' })!.data, tapOf(r, { layer: 4, site: 'residual' })!.data)).toBeLessThanOrEqual(1e-5);
  });
});

describe('graphs built straight into a file with external data (how every decoder session is made)', () => {
  it('give the same logits as the in-memory graph', async () => {
    const ck = loadCheckpoint(modelDir('stories260K'));
    const ids = Int32Array.from(randomIds(new Rng(10), 20, ck.config.vocabSize));
    const memory = await DecoderSession.create(ck.config, ck.weights, {}, RUNTIME, { inMemory: true });
    const file = await DecoderSession.create(ck.config, ck.weights, {}, RUNTIME);
    const a = (await memory.run({ ids, batch: 1, seq: 20 })).logits!;
    const b = (await file.run({ ids, batch: 1, seq: 20 })).logits!;
    expect(b.data).toEqual(a.data);
  });
});

describe('incremental decoding with a K/V cache', () => {
  it('gives each step the logits of the full forward pass at that position', async () => {
    for (const config of [configOf(sizes), configOf({ ...sizes, architecture: 'MistralForCausalLM', slidingWindow: 4 })]) {
      const weights = randomWeights(config, everyKind, new Rng(11));
      const batch = 2;
      const prompt = 5;
      const steps = 4;
      const seq = prompt + steps;
      const ids = Int32Array.from(randomIds(new Rng(12), batch * seq, config.vocabSize));
      const full = (await (await DecoderSession.create(config, weights, {}, RUNTIME)).run({ ids, batch, seq })).logits!;
      const inc = await DecoderSession.create(config, weights, { kvCache: true, logits: 'last' }, RUNTIME);
      expect(inc.cachedLayers).toEqual([0, 1, 4]);
      const kvHeads = (i: number) => (everyKind[i].attention as { kvHeads: number }).kvHeads;
      const rows = (from: number, to: number) => Int32Array.from({ length: batch * (to - from) }, (_, k) => ids[Math.floor(k / (to - from)) * seq + from + (k % (to - from))]);
      let r = await inc.run({ ids: rows(0, prompt), batch, seq: prompt }, inc.emptyCache(batch, kvHeads));
      for (let t = prompt; ; t++) {
        const V = config.vocabSize;
        for (let b = 0; b < batch; b++) {
          const expected = full.data.subarray((b * seq + t - 1) * V, (b * seq + t) * V);
          expect(maxAbsDiff(r.logits!.data.subarray(b * V, (b + 1) * V), expected)).toBeLessThanOrEqual(1e-4);
        }
        expect(r.present.get(0)!.key.shape).toEqual([batch, 2, t, config.headDim]);
        if (t === seq) break;
        r = await inc.run({ ids: rows(t, t + 1), batch, seq: 1 }, r.present);
      }
    }
  });
});

describe('scoring and inspection outputs', () => {
  const config = configOf(sizes);
  const weights = randomWeights(config, everyKind, new Rng(13));
  const batch = 2;
  const seq = 7;
  const V = config.vocabSize;
  const ids = Int32Array.from(randomIds(new Rng(14), batch * seq, V));

  /** log-softmax of each row, in float64. */
  const logSoftmax = (row: Float32Array) => {
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
    return Float32Array.from(row, (v) => v - lse);
  };

  it('give per-position KL from reference log-probs and NLL of targets, as computed in plain TypeScript', async () => {
    const other = randomWeights(config, everyKind, new Rng(15));
    const refLogits = (await (await DecoderSession.create(config, other, {}, RUNTIME)).run({ ids, batch, seq })).logits!;
    const logprobs = new Float32Array(refLogits.data.length);
    for (let r = 0; r < batch * seq; r++) logprobs.set(logSoftmax(refLogits.data.subarray(r * V, (r + 1) * V)), r * V);
    const targets = Int32Array.from(randomIds(new Rng(16), batch * seq, V));
    const scoring = await DecoderSession.create(config, weights, { logits: 'score' }, RUNTIME);
    const r = await scoring.run({ ids, batch, seq }, new Map(), { logprobs: { data: logprobs, shape: [batch, seq, V] }, targets });
    expect(r.logits).toBeUndefined();
    const own = (await (await DecoderSession.create(config, weights, {}, RUNTIME)).run({ ids, batch, seq })).logits!;
    for (let p = 0; p < batch * seq; p++) {
      const lp = logSoftmax(own.data.subarray(p * V, (p + 1) * V));
      const ref = logprobs.subarray(p * V, (p + 1) * V);
      let kl = 0;
      for (let v = 0; v < V; v++) kl += Math.exp(ref[v]) * (ref[v] - lp[v]);
      expect(r.kl!.data[p]).toBeCloseTo(kl, 4);
      expect(r.nll!.data[p]).toBeCloseTo(-lp[targets[p]], 4);
    }
  });

  it('give zero KL against the model\'s own distribution', async () => {
    const own = (await (await DecoderSession.create(config, weights, {}, RUNTIME)).run({ ids, batch, seq })).logits!;
    const logprobs = new Float32Array(own.data.length);
    for (let p = 0; p < batch * seq; p++) logprobs.set(logSoftmax(own.data.subarray(p * V, (p + 1) * V)), p * V);
    const r = await (await DecoderSession.create(config, weights, { logits: 'score' }, RUNTIME)).run({ ids, batch, seq }, new Map(), { logprobs: { data: logprobs, shape: [batch, seq, V] }, targets: ids });
    for (const v of r.kl!.data) expect(Math.abs(v)).toBeLessThan(1e-6);
  });

  it('expose the attention context and SwiGLU activations that o_proj and down_proj map to the sub-block outputs', async () => {
    const s = await DecoderSession.create(config, weights, { taps: [...subBlockTaps(0), { layer: 0, site: 'attention.context' }, { layer: 0, site: 'ffn.activation' }] }, RUNTIME);
    const r = await s.run({ ids, batch, seq });
    const layer = weights.layers[0];
    const project = (w: { data: Float32Array; shape: readonly number[] }, x: Float32Array) => {
      const [out, inDim] = w.shape;
      const rows = x.length / inDim;
      const y = new Float32Array(rows * out);
      for (let r0 = 0; r0 < rows; r0++) for (let o = 0; o < out; o++) {
        let acc = 0;
        for (let k = 0; k < inDim; k++) acc += w.data[o * inDim + k] * x[r0 * inDim + k];
        y[r0 * out + o] = acc;
      }
      return y;
    };
    const tap = (site: TapSite) => tapOf(r, { layer: 0, site })!;
    expect(tap('attention.context').shape).toEqual([batch, seq, config.numHeads * config.headDim]);
    expect(maxAbsDiff(project(layer.attention.tensors.o, tap('attention.context').data), tap('attention.output').data)).toBeLessThan(1e-5);
    expect(maxAbsDiff(project(layer.ffn.tensors.down, tap('ffn.activation').data), tap('ffn.output').data)).toBeLessThan(1e-5);
  });
});
