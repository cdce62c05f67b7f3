import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../src/arch/config.js';
import type { Architecture } from '../src/arch/variant.js';
import { randomWeights } from '../src/model/random.js';
import type { ModelWeights } from '../src/model/weights.js';
import { gradName } from '../src/onnx/autodiff.js';
import { INPUT_IDS } from '../src/onnx/decoder-graph.js';
import { float32Tensor, int32Tensor } from '../src/onnx/runtime.js';
import { buildTrainingGraph, REFERENCE_HIDDEN, REFERENCE_LOGPROBS, TARGETS, LOSS, type LossWeights } from '../src/train/graph.js';
import { Rng } from '../src/util/rng.js';
import { configOf, RUNTIME } from './support/fixtures.js';
import { centralDifferences, referenceDistillationLoss } from './support/reference-loss.js';

// Every variant kind, on a config whose heads × head_dim ≠ hidden; one layer is dropped whole.
const everyKind: Architecture = [
  { attention: { kind: 'gqa', kvHeads: 2 }, ffn: { kind: 'swiglu', intermediate: 12 } },
  { attention: { kind: 'gqa', kvHeads: 1 }, ffn: { kind: 'linear' } },
  { attention: { kind: 'linear' }, ffn: { kind: 'noop' } },
  { attention: { kind: 'noop' }, ffn: { kind: 'swiglu', intermediate: 3 } },
  { attention: { kind: 'gqa', kvHeads: 4 }, ffn: { kind: 'swiglu', intermediate: 5 } },
  { attention: { kind: 'noop' }, ffn: { kind: 'noop' } },
];
const B = 2;
const T = 5;

interface Targets {
  ids: Int32Array;
  logprobs: Float32Array;
  hidden: Float32Array[];
  next: Int32Array;
}

function targetsFor(config: ModelConfig, rng: Rng): Targets {
  const V = config.vocabSize;
  const ids = Int32Array.from({ length: B * T }, () => rng.int(V));
  const logprobs = new Float32Array(B * T * V);
  for (let p = 0; p < B * T; p++) {
    const row = Array.from({ length: V }, () => 2 * rng.normal());
    const lse = Math.log(row.reduce((s, v) => s + Math.exp(v), 0));
    row.forEach((v, k) => (logprobs[p * V + k] = v - lse));
  }
  const hidden = everyKind.map(() => rng.normalArray(B * T * config.hiddenSize));
  const next = Int32Array.from({ length: B * T }, () => rng.int(V));
  return { ids, logprobs, hidden, next };
}

/** The same losses as the training graph, from the plain-TypeScript forward pass in float64. */
function referenceLoss(config: ModelConfig, weights: ModelWeights, t: Targets, loss: LossWeights): number {
  const V = config.vocabSize;
  const E = config.hiddenSize;
  return referenceDistillationLoss(config, weights, t.ids, T, loss, (b, pos) => {
    const p = b * T + pos;
    return { logprobs: t.logprobs.subarray(p * V, (p + 1) * V), hidden: (layer) => t.hidden[layer - 1].subarray(p * E, (p + 1) * E), next: t.next[p] };
  });
}

const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, v) => s + v * v, 0));

describe('training graphs: every weight\'s gradient against finite differences of the float64 reference forward', () => {
  for (const [name, tied, loss, features] of [
    ['KL on logits', false, { kl: 1 }],
    ['LM loss', true, { lm: 1 }],
    ['cosine on hidden states', false, { cosine: 1 }],
    ['KL + cosine, tied embeddings', true, { kl: 1, cosine: 0.5 }],
    ['KL, with q/k/v biases and per-head q/k norms (Qwen2, Qwen3)', true, { kl: 1 }, { qkvBias: true, qkNorm: true }],
  ] as [string, boolean, LossWeights, Partial<ModelConfig>?][]) {
    it(`${name}: relative error ≤ 1e-3 on each tensor`, async () => {
      const config = { ...configOf({ hidden: 12, layers: everyKind.length, heads: 4, kvHeads: 4, headDim: 2, intermediate: 12, vocab: 19, tied }), ...features };
      const weights = randomWeights(config, everyKind, new Rng(21));
      const t = targetsFor(config, new Rng(22));
      const training = buildTrainingGraph(config, weights, B, T, loss);
      const session = await RUNTIME.session(training.graph);
      const feeds: Record<string, ort.Tensor> = { [INPUT_IDS]: int32Tensor(t.ids, [B, T]) };
      if (loss.kl) feeds[REFERENCE_LOGPROBS] = float32Tensor(t.logprobs, [B, T, config.vocabSize]);
      if ('lm' in loss) feeds[TARGETS] = int32Tensor(t.next, [B, T]);
      if (loss.cosine) everyKind.forEach((_, i) => (feeds[REFERENCE_HIDDEN(i + 1)] = float32Tensor(t.hidden[i], [B, T, config.hiddenSize])));
      for (const [key, tensor] of training.weights) feeds[key] = float32Tensor(tensor.data, tensor.shape);
      const out = await session.run(feeds);
      await session.release();
      expect(out[LOSS].data[0]).toBeCloseTo(referenceLoss(config, weights, t, loss), 4);
      // Every weight of the model is trained: the embedding, each layer's tensors, the final norm and (untied) the head.
      expect(training.weights.size).toBe(weights.layers.reduce((s, l) => s + Object.keys(l.attention.tensors).length + Object.keys(l.ffn.tensors).length, 2 + (tied ? 0 : 1)));
      for (const [key, tensor] of training.weights) {
        const fd = centralDifferences(tensor.data, () => referenceLoss(config, weights, t, loss));
        const grad = out[gradName(key)].data as Float32Array;
        expect(grad.length, key).toBe(fd.length);
        const error = norm(Array.from(fd, (v, k) => v - grad[k]));
        if (norm(fd) < 1e-9) expect(norm(grad), `${key}: no gradient expected`).toBeLessThan(1e-6);
        else expect(error / norm(fd), key).toBeLessThanOrEqual(1e-3);
      }
    });
  }
});
