import type { Sequences } from '../data/sequences.js';
import { equalLengthBatches } from '../data/sequences.js';
import type { ModelConfig } from '../arch/config.js';
import { sourceOf, type ModelWeights, type WeightSource } from '../model/weights.js';
import type { Runtime } from '../onnx/runtime.js';
import { runStaged } from '../onnx/staged.js';
import { batchTokensFor } from './divergence.js';

/**
 * Summed negative log-likelihood of the next token at every position but the last of one sequence,
 * from its logits row-major [seq, vocab] (log-softmax in float64).
 */
export function sequenceNll(logits: Float32Array, offset: number, ids: readonly number[], vocab: number): number {
  let total = 0;
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = offset + t * vocab;
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) max = Math.max(max, logits[row + v]);
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp(logits[row + v] - max);
    total += max + Math.log(sum) - logits[row + ids[t + 1]];
  }
  return total;
}

export interface PerplexityResult {
  readonly meanNll: number;
  readonly perplexity: number;
  /** Predicted tokens (each sequence's length minus one). */
  readonly tokens: number;
  /** Tokens run through the model per second of forward + loss time. */
  readonly tokensPerSecond: number;
}

/**
 * Mean next-token NLL of a model over sequences, batched by equal length and run in stages (the weights of
 * one stage in memory at a time); batches are sized so that their logits stay near 64 MB.
 */
export async function perplexity(
  config: ModelConfig,
  weights: ModelWeights | WeightSource,
  runtime: Runtime,
  seqs: Sequences,
  opts: { batchTokens?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<PerplexityResult> {
  const vocab = config.vocabSize;
  let nll = 0;
  let predicted = 0;
  let processed = 0;
  const start = performance.now();
  const longest = Math.max(...seqs.map((s) => s.length));
  const maxBatch = Math.max(1, Math.floor((opts.batchTokens ?? batchTokensFor(vocab, longest, 4096)) / longest));
  const batches = equalLengthBatches(seqs, maxBatch);
  const inputs = batches.map(({ indices, seq }) => {
    const ids = new Int32Array(indices.length * seq);
    indices.forEach((si, r) => ids.set(seqs[si], r * seq));
    return { ids, batch: indices.length, seq };
  });
  await runStaged(config, sourceOf(weights), runtime, inputs, { logits: 'all' }, (b, r) => {
    const { indices, seq } = batches[b];
    indices.forEach((si, row) => (nll += sequenceNll(r.logits!.data, row * seq * vocab, seqs[si], vocab)));
    predicted += indices.length * (seq - 1);
    processed += indices.length * seq;
    opts.onProgress?.(b + 1, batches.length);
  });
  const seconds = (performance.now() - start) / 1000;
  const meanNll = nll / predicted;
  return { meanNll, perplexity: Math.exp(meanNll), tokens: predicted, tokensPerSecond: processed / seconds };
}
