import type { ModelConfig } from '../arch/config.js';
import type { ModelWeights } from '../model/weights.js';
import { DecoderSession } from '../onnx/session.js';
import { hasTarget, referenceNll } from '../eval/kl.js';
import { windowBatches, type WindowSet } from '../data/sequences.js';

/** One layer's sub-block inputs and outputs over every token of a window set, each [tokens, hidden]. */
export interface LayerActivations {
  /** The residual stream entering the layer (attention's input). */
  readonly attnIn: Float32Array;
  readonly attnOut: Float32Array;
  /** The stream after attention (the FFN's input). */
  readonly ffnIn: Float32Array;
  readonly ffnOut: Float32Array;
}

/** Activations of the parent on a window set. Arrays live in SharedArrayBuffers, so workers read them without copies. */
export interface ActivationSet {
  readonly windows: number;
  readonly seqLen: number;
  readonly hidden: number;
  readonly ids: Int32Array;
  readonly layers: readonly LayerActivations[];
}

/** Validation activations plus what global scores compare against: the parent's next-token log-probabilities. */
export interface ValidationSet extends ActivationSet {
  /** [tokens, vocab] log-softmax of the parent's logits. */
  readonly logprobs: Float32Array;
  /** [tokens] the next token at each position; 0 at the end of a window (see `hasTarget`). */
  readonly targets: Int32Array;
  /** The parent's mean NLL over positions that have a next token. */
  readonly parentNll: number;
}

export const sharedFloats = (n: number) => new Float32Array(new SharedArrayBuffer(n * 4));

export { hasTarget } from '../eval/kl.js';

/** Runs the parent over a window set, keeping every layer's sub-block activations (and, for validation, its log-probabilities). */
export async function parentActivations(config: ModelConfig, weights: ModelWeights, set: WindowSet, seqLen: number, withLogprobs: boolean, threads: number, batchTokens = 2048): Promise<ActivationSet | ValidationSet> {
  const L = weights.layers.length;
  const E = config.hiddenSize;
  const V = config.vocabSize;
  const tokens = set.count * seqLen;
  const layers = Array.from({ length: L }, () => ({ attnIn: sharedFloats(tokens * E), attnOut: sharedFloats(tokens * E), ffnIn: sharedFloats(tokens * E), ffnOut: sharedFloats(tokens * E) }));
  const logprobs = withLogprobs ? sharedFloats(tokens * V) : null;
  const all = Array.from({ length: L }, (_, i) => i);
  const session = await DecoderSession.create(config, weights, { subBlocksOf: all, logits: withLogprobs ? 'all' : 'none' }, { threads });
  try {
    for (const { batch, from: offset, to } of windowBatches(set.count, seqLen, batchTokens)) {
      const r = await session.run({ ids: set.ids.subarray(offset, to), batch, seq: seqLen });
      for (const i of all) {
        const s = r.subBlocks.get(i)!;
        const zero = (t?: { data: Float32Array }) => t?.data ?? new Float32Array(batch * seqLen * E);
        layers[i].attnIn.set(s.attentionInput.data, offset * E);
        layers[i].attnOut.set(zero(s.attentionOutput), offset * E);
        layers[i].ffnIn.set(s.ffnInput.data, offset * E);
        layers[i].ffnOut.set(zero(s.ffnOutput), offset * E);
      }
      if (logprobs !== null) logSoftmaxRows(r.logits!.data, V, logprobs, offset * V);
    }
  } finally {
    await session.release();
  }
  const ids = new Int32Array(new SharedArrayBuffer(tokens * 4));
  ids.set(set.ids);
  const base = { windows: set.count, seqLen, hidden: E, ids, layers };
  if (logprobs === null) return base;
  const targets = new Int32Array(new SharedArrayBuffer(tokens * 4));
  for (let t = 0; t < tokens; t++) if (hasTarget(t, seqLen)) targets[t] = ids[t + 1];
  return { ...base, logprobs, targets, parentNll: referenceNll({ windows: set.count, seqLen, vocab: V, logprobs, targets }) };
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
