import { closeSync, openSync, readSync } from 'node:fs';
import type { ModelConfig } from '../arch/config.js';
import { windowBatches, type WindowSet } from '../data/sequences.js';
import { sourceOf, type ModelWeights, type WeightSource } from '../model/weights.js';
import type { Runtime } from '../onnx/runtime.js';
import type { DecoderSession, TokenBatch } from '../onnx/session.js';
import { runStaged, type SessionCache } from '../onnx/staged.js';
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

/**
 * A reference's log-probabilities by rows of token positions [from, to): from memory, or read from its file
 * as each batch needs them (what scoring workers do, so no process holds [tokens, vocab] floats).
 */
export interface ReferenceRows {
  readonly windows: number;
  readonly seqLen: number;
  readonly vocab: number;
  readonly targets: Int32Array;
  rows(from: number, to: number): Float32Array;
}

export const inMemoryRows = (ref: ReferenceDistribution): ReferenceRows => ({ ...ref, rows: (from, to) => ref.logprobs.subarray(from * ref.vocab, to * ref.vocab) });

/** Rows of a [tokens, vocab] float32 file (the run's reference.f32), read on demand. */
export function fileRows(file: string, ref: Omit<ReferenceRows, 'rows'>): ReferenceRows {
  return {
    ...ref,
    rows: (from, to) => {
      const out = new Float32Array((to - from) * ref.vocab);
      const fd = openSync(file, 'r');
      try {
        const bytes = new Uint8Array(out.buffer);
        for (let done = 0; done < bytes.length; ) {
          const n = readSync(fd, bytes, done, bytes.length - done, from * ref.vocab * 4 + done);
          if (n === 0) throw new Error(`${file}: ends before token ${to}`);
          done += n;
        }
      } finally {
        closeSync(fd);
      }
      return out;
    },
  };
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

/** Token positions per batch whose [tokens, vocab] float32 logits stay near 64 MB, in whole windows. */
export function batchTokensFor(vocab: number, seqLen: number, most = 1024): number {
  return Math.max(seqLen, Math.min(most, Math.floor(2 ** 26 / (4 * vocab) / seqLen) * seqLen));
}

/** A model's next-token distribution on a window set: what children (or a model on new text) are compared against. */
export async function distributionOn(config: ModelConfig, weights: ModelWeights | WeightSource, set: WindowSet, seqLen: number, runtime: Runtime): Promise<ReferenceDistribution> {
  const V = config.vocabSize;
  const tokens = set.count * seqLen;
  const logprobs = new Float32Array(tokens * V);
  const batches = [...windowBatches(set.count, seqLen, batchTokensFor(V, seqLen))];
  const inputs = batches.map(({ batch, from, to }) => ({ ids: set.ids.subarray(from, to), batch, seq: seqLen }));
  await runStaged(config, sourceOf(weights), runtime, inputs, { logits: 'all' }, (b, r) => logSoftmaxRows(r.logits!.data, V, logprobs, batches[b].from * V));
  return { windows: set.count, seqLen, vocab: V, logprobs, targets: nextTokens(set.ids, seqLen) };
}

/**
 * Mean KL(reference ‖ model) per token and the model's mean LM loss, from a scoring session (logits:
 * 'score') fed window batches by `input(from, to)` (token positions [from, to) of the windows).
 */
export async function divergence(session: DecoderSession, ref: ReferenceDistribution, input: (from: number, to: number, batch: number) => TokenBatch | Tensor, batchTokens = 1024): Promise<{ kl: number; lmLoss: number }> {
  const sum = divergenceSum(ref);
  for (const { batch, from, to } of windowBatches(ref.windows, ref.seqLen, batchTokens)) {
    const r = await session.run(input(from, to, batch), new Map(), {
      logprobs: { data: ref.logprobs.subarray(from * ref.vocab, to * ref.vocab), shape: [batch, ref.seqLen, ref.vocab] },
      targets: ref.targets.subarray(from, to),
    });
    sum.add(r, from, to);
  }
  return sum.mean();
}

/** Per-position KL and NLL of scored batches, summed: mean KL over every position, mean NLL over those with a target. */
function divergenceSum(ref: { readonly windows: number; readonly seqLen: number }) {
  let kl = 0;
  let nll = 0;
  let predicted = 0;
  return {
    add(r: { kl?: Tensor; nll?: Tensor }, from: number, to: number): void {
      for (let t = from; t < to; t++) {
        kl += r.kl!.data[t - from];
        if (hasTarget(t, ref.seqLen)) {
          nll += r.nll!.data[t - from];
          predicted++;
        }
      }
    },
    mean: () => ({ kl: kl / (ref.windows * ref.seqLen), lmLoss: nll / predicted }),
  };
}

/** KL from a reference and LM loss of a whole model on the reference's windows (token ids `ids`), run in stages. */
export async function modelDivergence(config: ModelConfig, weights: ModelWeights | WeightSource, ids: Int32Array, ref: ReferenceDistribution, runtime: Runtime): Promise<{ kl: number; lmLoss: number }> {
  const batches = [...windowBatches(ref.windows, ref.seqLen, batchTokensFor(ref.vocab, ref.seqLen))];
  const inputs = batches.map(({ batch, from, to }) => ({ ids: ids.subarray(from, to), batch, seq: ref.seqLen }));
  return stagedDivergence(config, sourceOf(weights), runtime, inputs, batches, inMemoryRows(ref));
}

/**
 * KL and LM loss over a reference's windows of a model fed `inputs` (token batches, or residual streams entering
 * layer `fromLayer`), one batch per entry of `batches`, run in stages.
 */
export async function stagedDivergence(
  config: ModelConfig,
  source: WeightSource,
  runtime: Runtime,
  inputs: readonly (TokenBatch | Tensor)[],
  batches: readonly { from: number; to: number; batch: number }[],
  ref: ReferenceRows,
  o: { fromLayer?: number; sessions?: SessionCache } = {},
): Promise<{ kl: number; lmLoss: number }> {
  return (await stagedDivergences(config, source, runtime, [inputs], batches, ref, o))[0];
}

/**
 * KL and LM loss of several inputs through the same layers (one per entry of `inputs`, each a list of batches
 * as in `stagedDivergence`): one staged pass, each stage built once for all. Batch j of every input runs before
 * batch j + 1 of any, so the reference rows of a batch are read once for all inputs.
 */
export async function stagedDivergences(
  config: ModelConfig,
  source: WeightSource,
  runtime: Runtime,
  inputs: readonly (readonly (TokenBatch | Tensor)[])[],
  batches: readonly { from: number; to: number; batch: number }[],
  ref: ReferenceRows,
  o: { fromLayer?: number; sessions?: SessionCache; stopped?: () => boolean } = {},
): Promise<{ kl: number; lmLoss: number }[]> {
  const n = inputs.length;
  const sums = inputs.map(() => divergenceSum(ref));
  let held: { j: number; rows: Float32Array } | undefined;
  const reference = (b: number) => {
    const j = Math.floor(b / n);
    const { batch, from, to } = batches[j];
    if (held?.j !== j) held = { j, rows: ref.rows(from, to) };
    return { logprobs: { data: held.rows, shape: [batch, ref.seqLen, ref.vocab] }, targets: ref.targets.subarray(from, to) };
  };
  const flat = batches.flatMap((_, j) => inputs.map((input) => input[j]));
  await runStaged(config, source, runtime, flat, { logits: 'score', reference, fromLayer: o.fromLayer, sessions: o.sessions, stopped: o.stopped }, (b, r) => {
    const { from, to } = batches[Math.floor(b / n)];
    sums[b % n].add(r, from, to);
  });
  return sums.map((s) => s.mean());
}
