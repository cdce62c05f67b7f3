import type { Sequences } from '../data/sequences.js';
import { equalLengthBatches } from '../data/sequences.js';
import type { ModelConfig } from '../arch/config.js';
import { sourceOf, type ModelWeights, type WeightSource } from '../model/weights.js';
import type { Runtime } from '../onnx/runtime.js';
import { runStaged } from '../onnx/staged.js';
import { batchTokensFor, hasTarget, nextTokens } from './divergence.js';

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
 * one stage in memory at a time), the NLL taken in the graph; batches are sized so that the logits inside
 * the graph stay near 64 MB.
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
  // The NLL is taken inside the graph, so no [batch, seq, vocab] logits leave it.
  const targets = (b: number) => ({ targets: nextTokens(inputs[b].ids, inputs[b].seq) });
  await runStaged(config, sourceOf(weights), runtime, inputs, { logits: 'nll', reference: targets }, (b, r) => {
    const { indices, seq } = batches[b];
    const perToken = r.nll!.data;
    for (let t = 0; t < perToken.length; t++) if (hasTarget(t, seq)) nll += perToken[t];
    predicted += indices.length * (seq - 1);
    processed += indices.length * seq;
    opts.onProgress?.(b + 1, batches.length);
  });
  const seconds = (performance.now() - start) / 1000;
  const meanNll = nll / predicted;
  return { meanNll, perplexity: Math.exp(meanNll), tokens: predicted, tokensPerSecond: processed / seconds };
}
