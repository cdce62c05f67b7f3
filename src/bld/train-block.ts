import type { SubBlock } from '../arch/variant.js';
import { subBlockAlone, type SubBlockWeights } from '../model/weights.js';
import { HIDDEN_IN } from '../onnx/decoder-graph.js';
import { float32Tensor } from '../onnx/runtime.js';
import { BLOCK_TARGET, buildBlockTrainingGraph } from '../train/graph.js';
import { batchWindows, optimize } from '../train/loop.js';
import type { Tensor } from '../util/tensor.js';
import type { ActivationSet } from './activations.js';
import type { CandidateContext } from './candidate.js';

/** Blockwise local distillation by gradient descent: the settings Puzzle's BLD trains each candidate with. */
export const BLD_SETTINGS = { lr: 1e-3, warmupShare: 0.1, clip: 1, batch: 16, seed: 0 } as const;

/**
 * Trains a candidate sub-block, from its closed-form fit, on its local loss — the normalised MSE of its output
 * against the parent block's on the calibration activations — for `tokens` tokens (epochs of the calibration
 * windows in seeded order). Returns trained copies of its weights; the fitted ones are untouched.
 */
export async function trainSubBlock(ctx: CandidateContext, sub: SubBlock, fitted: SubBlockWeights, layer: number, tokens: number): Promise<{ weights: SubBlockWeights; steps: number }> {
  const set: ActivationSet = ctx.calibration;
  const E = ctx.config.hiddenSize;
  const batch = Math.min(BLD_SETTINGS.batch, set.windows);
  const tokensPerStep = batch * set.seqLen;
  const steps = Math.max(1, Math.ceil(tokens / tokensPerStep));
  const weights: SubBlockWeights = { variant: fitted.variant, tensors: Object.fromEntries(Object.entries(fitted.tensors).map(([k, t]): [string, Tensor] => [k, { data: t.data.slice(), shape: t.shape }])) };
  const training = buildBlockTrainingGraph(ctx.config, subBlockAlone(sub, weights), sub, batch, set.seqLen, { clip: BLD_SETTINGS.clip });
  const { input, output } = set.layer(layer)[sub];
  const rows = (source: Float32Array, windows: number[]) => {
    const out = new Float32Array(tokensPerStep * E);
    windows.forEach((w, b) => out.set(source.subarray(w * set.seqLen * E, (w + 1) * set.seqLen * E), b * set.seqLen * E));
    return float32Tensor(out, [batch, set.seqLen, E]);
  };
  await optimize(training, async (step) => {
    const windows = batchWindows(set.windows, batch, BLD_SETTINGS.seed, step);
    return { [HIDDEN_IN]: rows(input, windows), [BLOCK_TARGET]: rows(output, windows) };
  }, { steps, lr: BLD_SETTINGS.lr, warmup: Math.ceil(BLD_SETTINGS.warmupShare * steps), runtime: ctx.runtime });
  return { weights, steps };
}
