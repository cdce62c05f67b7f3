import type { ModelConfig } from '../arch/config.js';
import { windowBatches, type WindowSet } from '../data/sequences.js';
import type { ModelWeights } from '../model/weights.js';
import type { Runtime } from '../onnx/runtime.js';
import { DecoderSession, type TokenBatch } from '../onnx/session.js';
import type { Tensor } from '../util/tensor.js';

/** What a model is compared against: the reference's next-token log-probabilities on fixed windows. */
export interface ReferenceDistribution {
  readonly windows: number;
  readonly seqLen: number;
  readonly vocab: number;
  /** [windows·seqLen, vocab] */
  readonly logprobs: Float32Array;
  /** [windows·seqLen] next token ids; 0 at each window's last position, which has none. */
  readonly targets: Int32Array;
}

/** Whether position t of a window of length seqLen has a next token to predict. */
export const hasTarget = (position: number, seqLen: number) => position % seqLen !== seqLen - 1;

/** The next token of every position of a window set (0 where a window ends). */
export function nextTokens(ids: Int32Array, seqLen: number, out: Int32Array = new Int32Array(ids.length)): Int32Array {
  for (let t = 0; t < ids.length; t++) if (hasTarget(t, seqLen)) out[t] = ids[t + 1];
  return out;
}

/** The reference's own mean LM loss: −log p(target) over the positions that have a target. */
export function referenceNll(ref: ReferenceDistribution): number {
  let nll = 0;
  let counted = 0;
  for (let t = 0; t < ref.windows * ref.seqLen; t++) {
    if (!hasTarget(t, ref.seqLen)) continue;
    nll -= ref.logprobs[t * ref.vocab + ref.targets[t]];
    counted++;
  }
  return nll / counted;
}

/** Row-wise log-softmax of [rows, n] logits into `out` at `outOffset` (float64 accumulation). */
export function logSoftmaxRows(logits: Float32Array, n: number, out: Float32Array, outOffset: number): void {
  for (let r = 0; r < logits.length / n; r++) {
    const row = logits.subarray(r * n, (r + 1) * n);
    let max = -Infinity;
    for (const v of row) if (v > max) max = v;
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    const lse = max + Math.log(sum);
    for (let k = 0; k < n; k++) out[outOffset + r * n + k] = row[k] - lse;
  }
}

/** A model's next-token distribution on a window set: what children (or a model on new text) are compared against. */
export async function distributionOn(config: ModelConfig, weights: ModelWeights, set: WindowSet, seqLen: number, runtime: Runtime): Promise<ReferenceDistribution> {
  const V = config.vocabSize;
  const tokens = set.count * seqLen;
  const logprobs = new Float32Array(tokens * V);
  const session = await DecoderSession.create(config, weights, {}, runtime);
  try {
    for (const { batch, from, to } of windowBatches(set.count, seqLen, 1024)) {
      const r = await session.run({ ids: set.ids.subarray(from, to), batch, seq: seqLen });
      logSoftmaxRows(r.logits!.data, V, logprobs, from * V);
    }
  } finally {
    await session.release();
  }
  return { windows: set.count, seqLen, vocab: V, logprobs, targets: nextTokens(set.ids, seqLen) };
}

/**
 * Mean KL(reference ‖ model) per token and the model's mean LM loss, from a scoring session (logits:
 * 'score') fed window batches by `input(from, to)` (token positions [from, to) of the windows).
 */
export async function divergence(session: DecoderSession, ref: ReferenceDistribution, input: (from: number, to: number, batch: number) => TokenBatch | Tensor, batchTokens = 1024): Promise<{ kl: number; lmLoss: number }> {
  let kl = 0;
  let nll = 0;
  let predicted = 0;
  for (const { batch, from, to } of windowBatches(ref.windows, ref.seqLen, batchTokens)) {
    const r = await session.run(input(from, to, batch), new Map(), {
      logprobs: { data: ref.logprobs.subarray(from * ref.vocab, to * ref.vocab), shape: [batch, ref.seqLen, ref.vocab] },
      targets: ref.targets.subarray(from, to),
    });
    for (let t = from; t < to; t++) {
      kl += r.kl!.data[t - from];
      if (hasTarget(t, ref.seqLen)) {
        nll += r.nll!.data[t - from];
        predicted++;
      }
    }
  }
  return { kl: kl / (ref.windows * ref.seqLen), lmLoss: nll / predicted };
}

/** KL from a reference and LM loss of a whole model on the reference's windows (token ids `ids`). */
export async function modelDivergence(config: ModelConfig, weights: ModelWeights, ids: Int32Array, ref: ReferenceDistribution, runtime: Runtime): Promise<{ kl: number; lmLoss: number }> {
  const session = await DecoderSession.create(config, weights, { logits: 'score' }, runtime);
  try {
    return await divergence(session, ref, (from, to, batch) => ({ ids: ids.subarray(from, to), batch, seq: ref.seqLen }));
  } finally {
    await session.release();
  }
}
