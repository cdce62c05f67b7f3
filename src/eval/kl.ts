import { windowBatches } from '../data/sequences.js';
import type { DecoderSession, TokenBatch } from '../onnx/session.js';
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

/**
 * Mean KL(reference ‖ model) per token and the model's mean LM loss, from a scoring session (logits:
 * 'score') fed window batches by `input(from, to)` (token positions [from, to) of the windows).
 */
export async function compareToReference(session: DecoderSession, ref: ReferenceDistribution, input: (from: number, to: number, batch: number) => TokenBatch | Tensor, batchTokens = 1024): Promise<{ kl: number; lmLoss: number }> {
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
