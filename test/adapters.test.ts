import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../src/arch/config.js';
import type { Architecture } from '../src/arch/variant.js';
import { randomWeights } from '../src/model/random.js';
import { inMemory, materialize, type ModelWeights } from '../src/model/weights.js';
import { referenceForward } from '../src/reference/forward.js';
import { adapterTraining, cosineSum, headChunkWindows } from '../src/train/adapter-distillation.js';
import type { LossWeights } from '../src/train/graph.js';
import { freshAdapter, mergeAdapter, mergedSource, type Adapter } from '../src/train/lora.js';
import { Rng } from '../src/util/rng.js';
import { configOf, RUNTIME } from './support/fixtures.js';
import { centralDifferences, referenceDistillationLoss } from './support/reference-loss.js';

// Every variant kind, on a config whose heads × head_dim ≠ hidden; one layer is dropped whole.
const child: Architecture = [
  { attention: { kind: 'gqa', kvHeads: 2 }, ffn: { kind: 'swiglu', intermediate: 12 } },
  { attention: { kind: 'gqa', kvHeads: 1 }, ffn: { kind: 'linear' } },
  { attention: { kind: 'linear' }, ffn: { kind: 'noop' } },
  { attention: { kind: 'noop' }, ffn: { kind: 'swiglu', intermediate: 3 } },
  { attention: { kind: 'noop' }, ffn: { kind: 'noop' } },
];
const parent: Architecture = child.map(() => ({ attention: { kind: 'gqa', kvHeads: 4 }, ffn: { kind: 'swiglu', intermediate: 12 } }));
const B = 2;
const T = 5;
const LORA = { rank: 2, alpha: 3 };

/** The distillation loss of a student (adapters merged in) against its teacher, both by the float64 reference forward. */
function referenceLoss(config: ModelConfig, studentWeights: ModelWeights, teacherWeights: ModelWeights, ids: Int32Array, loss: LossWeights): number {
  const teacher = Array.from({ length: B }, (_, b) => referenceForward(config, teacherWeights, Array.from(ids.subarray(b * T, (b + 1) * T))));
  return referenceDistillationLoss(config, studentWeights, ids, T, loss, (b, pos) => {
    const row = teacher[b].logits[pos];
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((acc, v) => acc + Math.exp(v - max), 0));
    return { logprobs: Array.from(row, (v) => v - lse), hidden: (layer) => teacher[b].hidden[layer][pos], next: ids[b * T + pos + 1] };
  });
}

const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, v) => s + v * v, 0));

describe('distillation through low-rank adapters, a layer at a time', () => {
  for (const [name, loss, features] of [
    ['KL + cosine + LM', { kl: 1, cosine: 0.5, lm: 0.25 }],
    ['KL, with q/k/v biases and per-head q/k norms (Qwen2, Qwen3), untied head', { kl: 1 }, { qkvBias: true, qkNorm: true, tieEmbeddings: false }],
  ] as [string, LossWeights, Partial<ModelConfig>?][]) {
    it(`${name}: every adapter's gradient against finite differences of the float64 reference forward (relative error ≤ 1e-3)`, async () => {
      const config = { ...configOf({ hidden: 12, layers: child.length, heads: 4, kvHeads: 4, headDim: 2, intermediate: 12, vocab: 19, tied: true }), ...features };
      const student = randomWeights(config, child, new Rng(31));
      const teacher = randomWeights(config, parent, new Rng(32));
      const ids = Int32Array.from({ length: B * T }, (_, k) => (k * 7 + 3) % config.vocabSize);
      const training = await adapterTraining(config, inMemory(student), { config, weights: inMemory(teacher) }, { batch: B, seqLen: T, loss, lora: LORA, clip: 1, seed: 0, steps: 1, lr: 1e-3, warmup: 0, runtime: RUNTIME });
      // Adapters away from zero (a fresh B is zero, which would leave every A without a gradient).
      const rng = new Rng(33);
      const adapters = training.shapes.map((s) => rng.normalArray(s[0] * s[1], 0.3));
      const { loss: value, grads } = await training.gradients(ids, adapters);
      await training.release();

      const merged = () => {
        const byWeight = new Map<string, Adapter>();
        for (let k = 0; k < training.keys.length; k += 2) byWeight.set(training.keys[k].slice('lora_a.'.length), { a: { data: adapters[k], shape: training.shapes[k] }, b: { data: adapters[k + 1], shape: training.shapes[k + 1] } });
        return materialize(mergedSource(inMemory(student), byWeight, LORA));
      };
      expect(value).toBeCloseTo(referenceLoss(config, merged(), teacher, ids, loss), 5);
      // Adapters on every linear weight of every layer that computes something: q/k/v/o, gate/up/down, the linear maps.
      expect(training.keys.length).toBe(2 * (4 + 3 + 4 + 1 + 1 + 3));
      for (let k = 0; k < training.keys.length; k++) {
        const fd = centralDifferences(adapters[k], () => referenceLoss(config, merged(), teacher, ids, loss));
        const error = norm(Array.from(fd, (v, e) => v - grads[k][e]));
        expect(error / norm(fd), training.keys[k]).toBeLessThanOrEqual(1e-3);
      }
    });
  }

  it('a fresh adapter changes nothing; merged, an adapter is W + (α/r)·B·A', () => {
    const fresh = freshAdapter('3.ffn.up', [5, 4], 2, 0);
    expect(fresh.a.shape).toEqual([2, 4]);
    expect(fresh.b.data.every((v) => v === 0)).toBe(true);
    expect(fresh.a.data.every((v) => Math.abs(v) <= 0.5)).toBe(true);
    const w = { data: Float32Array.from({ length: 20 }, (_, i) => i / 10), shape: [5, 4] };
    expect(mergeAdapter(w, fresh, LORA).data).toEqual(w.data);
    const a = { data: Float32Array.from([1, 0, 2, 0, 0, 1, 0, 3]), shape: [2, 4] };
    const b = { data: Float32Array.from([1, 1, 0, 2, 0, 0, 0, 0, 1, 0]), shape: [5, 2] };
    const merged = mergeAdapter(w, { a, b }, LORA).data;
    // Row 0 of B·A = A₀ + A₁ = [1, 1, 2, 3]; row 1 = 2·A₁ = [0, 2, 0, 6]; scale α/r = 1.5.
    expect(Array.from(merged.subarray(0, 8))).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7].map((v, i) => Math.fround(v + 1.5 * [1, 1, 2, 3, 0, 2, 0, 6][i])));
  });

  it('the cosine term: its gradient against central differences; the head in chunks of whole windows near 64 MB', () => {
    const E = 6;
    const rng = new Rng(5);
    const h = rng.normalArray(3 * E);
    const p = rng.normalArray(3 * E);
    const grad = new Float32Array(3 * E);
    const sum = cosineSum(h, p, E, 1, grad);
    for (let k = 0; k < h.length; k++) {
      const w = h[k];
      const dummy = new Float32Array(3 * E);
      h[k] = w + 1e-3;
      const plus = cosineSum(h, p, E, 1, dummy);
      h[k] = w - 1e-3;
      const minus = cosineSum(h, p, E, 1, dummy);
      h[k] = w;
      expect(grad[k]).toBeCloseTo(-(plus - minus) / 2e-3, 3);
    }
    expect(Math.abs(sum)).toBeLessThanOrEqual(3);
    expect(headChunkWindows(16, 128, 128256)).toBe(1);
    expect(headChunkWindows(16, 128, 49152)).toBe(2);
    expect(headChunkWindows(16, 64, 512)).toBe(16);
    expect(headChunkWindows(6, 128, 32000)).toBe(3);
  });
});
