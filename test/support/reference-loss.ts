import type { ModelConfig } from '../../src/arch/config.js';
import type { ModelWeights } from '../../src/model/weights.js';
import { referenceForward } from '../../src/reference/forward.js';
import type { LossWeights } from '../../src/train/graph.js';

/** What a model is distilled toward at one position: log-probabilities, the residual stream after each layer (1-based), the next token. */
export interface PositionTarget {
  readonly logprobs: ArrayLike<number>;
  readonly hidden: (layer: number) => ArrayLike<number>;
  readonly next: number;
}

/**
 * The distillation losses as the training graphs weigh them (KL per token, LM loss per predicted token, 1 − the
 * mean cosine over layers and tokens), from the plain-TypeScript forward pass in float64 over windows of T tokens.
 */
export function referenceDistillationLoss(config: ModelConfig, weights: ModelWeights, ids: Int32Array, T: number, loss: LossWeights, target: (window: number, pos: number) => PositionTarget): number {
  const V = config.vocabSize;
  const E = config.hiddenSize;
  const L = weights.layers.length;
  const B = ids.length / T;
  let [kl, lm, cos] = [0, 0, 0];
  for (let b = 0; b < B; b++) {
    const r = referenceForward(config, weights, Array.from(ids.subarray(b * T, (b + 1) * T)));
    for (let pos = 0; pos < T; pos++) {
      const row = r.logits[pos];
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      const t = target(b, pos);
      for (let v = 0; v < V; v++) kl += Math.exp(t.logprobs[v]) * (t.logprobs[v] - (row[v] - lse));
      if (pos < T - 1) lm -= row[t.next] - lse;
      for (let l = 1; l <= L; l++) {
        const [h, p] = [r.hidden[l][pos], t.hidden(l)];
        let [dot, hh, pp] = [0, 0, 0];
        for (let k = 0; k < E; k++) {
          dot += h[k] * p[k];
          hh += h[k] * h[k];
          pp += p[k] * p[k];
        }
        cos += dot / Math.sqrt(hh * pp);
      }
    }
  }
  return (loss.kl ?? 0) * (kl / (B * T)) + (loss.lm ?? 0) * (lm / (B * (T - 1))) + (loss.cosine ?? 0) * (1 - cos / (B * T * L));
}

/** Central finite differences of `f` in each element of `data` (each step as float32 actually stores it), restoring it after. */
export function centralDifferences(data: Float32Array, f: () => number): Float64Array {
  const out = new Float64Array(data.length);
  for (let k = 0; k < data.length; k++) {
    const w = data[k];
    const h = 1e-3 * Math.max(1, Math.abs(w));
    data[k] = w + h;
    const up = data[k] - w;
    const plus = f();
    data[k] = w - h;
    const down = w - data[k];
    const minus = f();
    data[k] = w;
    out[k] = (plus - minus) / (up + down);
  }
  return out;
}
