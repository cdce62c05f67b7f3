import type { ModelConfig } from '../arch/config.js';
import { SUB_BLOCKS, type SubBlock } from '../arch/variant.js';
import { windowBatches, type WindowSet } from '../data/sequences.js';
import { logSoftmaxRows, nextTokens, referenceNll } from '../lm/divergence.js';
import type { ModelWeights } from '../model/weights.js';
import { subBlockTaps, tapName, type TapSite } from '../onnx/emit.js';
import type { Runtime } from '../onnx/runtime.js';
import { DecoderSession } from '../onnx/session.js';

/** A sub-block's input and output (what it adds to the residual stream) over every token of a window set, each [tokens, hidden]. */
export interface SubBlockActivations {
  readonly input: Float32Array;
  readonly output: Float32Array;
}

export type LayerActivations = { readonly [S in SubBlock]: SubBlockActivations };

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

/** Which tap holds each sub-block's input and output. */
const SITES: { readonly [S in SubBlock]: { readonly input: TapSite; readonly output: TapSite } } = {
  attention: { input: 'residual', output: 'attention.output' },
  ffn: { input: 'ffn.input', output: 'ffn.output' },
};

/** Runs the parent over a window set, keeping every layer's sub-block activations (and, for validation, its log-probabilities). */
export async function parentActivations(config: ModelConfig, weights: ModelWeights, set: WindowSet, seqLen: number, withLogprobs: boolean, runtime: Runtime, batchTokens = 2048): Promise<ActivationSet | ValidationSet> {
  const L = weights.layers.length;
  const E = config.hiddenSize;
  const V = config.vocabSize;
  const tokens = set.count * seqLen;
  const pair = () => ({ input: sharedFloats(tokens * E), output: sharedFloats(tokens * E) });
  const layers: LayerActivations[] = Array.from({ length: L }, () => ({ attention: pair(), ffn: pair() }));
  const logprobs = withLogprobs ? sharedFloats(tokens * V) : null;
  const all = Array.from({ length: L }, (_, i) => i);
  const session = await DecoderSession.create(config, weights, { taps: all.flatMap(subBlockTaps), logits: withLogprobs ? 'all' : 'none' }, runtime);
  try {
    for (const { batch, from: offset, to } of windowBatches(set.count, seqLen, batchTokens)) {
      const r = await session.run({ ids: set.ids.subarray(offset, to), batch, seq: seqLen });
      for (const i of all) {
        for (const sub of SUB_BLOCKS) {
          for (const end of ['input', 'output'] as const) {
            // A sub-block with no output (a no-op) adds zeros.
            const t = r.taps.get(tapName({ layer: i, site: SITES[sub][end] }));
            layers[i][sub][end].set(t?.data ?? new Float32Array(batch * seqLen * E), offset * E);
          }
        }
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
  const targets = nextTokens(ids, seqLen, new Int32Array(new SharedArrayBuffer(tokens * 4)));
  return { ...base, logprobs, targets, parentNll: referenceNll({ windows: set.count, seqLen, vocab: V, logprobs, targets }) };
}
