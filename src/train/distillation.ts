import type ort from 'onnxruntime-node';
import type { ModelConfig } from '../arch/config.js';
import type { WindowSet } from '../data/sequences.js';
import { nextTokens } from '../lm/divergence.js';
import { sourceOf, type ModelWeights, type WeightSource } from '../model/weights.js';
import { emitDecoder, INPUT_IDS } from '../onnx/decoder-graph.js';
import { tapName } from '../onnx/emit.js';
import { GraphBuilder } from '../onnx/graph-builder.js';
import { int32Tensor } from '../onnx/runtime.js';
import { inferenceWeights } from '../onnx/weight-writer.js';
import { fail } from '../util/errors.js';
import { buildTrainingGraph, REFERENCE_HIDDEN, REFERENCE_LOGPROBS, TARGETS, type LossWeights } from './graph.js';
import { batchIds, optimize, type TrainingOptions, type TrainingResult } from './loop.js';

export interface DistillationSettings extends TrainingOptions {
  /** Maximum global gradient norm. */
  readonly clip: number;
  /** Windows per step, and tokens per window. */
  readonly batch: number;
  readonly seqLen: number;
  readonly loss: LossWeights;
  /** Seed of the batch order. */
  readonly seed: number;
}

/** The parent as a teacher: its log-probabilities and (for the cosine loss) its residual stream after each layer. */
function teacherGraph(config: ModelConfig, weights: WeightSource, batch: number, seq: number, hidden: boolean, file: string): GraphBuilder {
  // Built straight into its file: the teacher's weights are read a layer at a time, never all in memory twice.
  const g = GraphBuilder.streamingTo('tessera_teacher', file, { scratch: true });
  const taps = hidden ? Array.from({ length: weights.numLayers }, (_, i) => ({ layer: i + 1, site: 'residual' as const })) : [];
  const { logits } = emitDecoder(g, config, weights, { shape: { batch, seq }, logits: 'all', taps }, inferenceWeights);
  g.expose(g.node('LogSoftmax', [logits!], { axis: -1 }), REFERENCE_LOGPROBS, [batch, seq, config.vocabSize]);
  return g;
}

function arraysOf(w: ModelWeights): Float32Array[] {
  return [w.embed.data, w.finalNorm.data, w.lmHead.data, ...w.layers.flatMap((l) => [...Object.values(l.attention.tensors), ...Object.values(l.ffn.tensors)].map((t) => t.data))];
}

/**
 * Global knowledge distillation: trains every weight of `student` in place toward `teacher` on batches of
 * windows — each step the teacher's log-probabilities and residual streams are the targets of the losses.
 */
export async function distil(config: ModelConfig, student: ModelWeights, teacher: { config: ModelConfig; weights: ModelWeights | WeightSource }, windows: WindowSet, o: DistillationSettings): Promise<TrainingResult> {
  if (windows.count === 0) fail(`${windows.range.file}: too little text for one window of ${o.seqLen} tokens`);
  const training = buildTrainingGraph(config, student, o.batch, o.seqLen, o.loss, { clip: o.clip });
  // A teacher read from disk has arrays of its own; one in memory might share the student's.
  const teacherArrays = new Set('layers' in teacher.weights ? arraysOf(teacher.weights) : []);
  if ([...training.weights.values()].some((p) => teacherArrays.has(p.data))) throw new Error('the student shares weight arrays with its teacher; training it in place would change the teacher');
  const cosine = (o.loss.cosine ?? 0) > 0;
  const teacherSession = await o.runtime.sessionBuiltAt((file) => teacherGraph(teacher.config, sourceOf(teacher.weights), o.batch, o.seqLen, cosine, file));
  try {
    return await optimize(training, async (step) => {
      const ids = batchIds(windows, o.batch, o.seqLen, o.seed, step);
      const input = int32Tensor(ids, [o.batch, o.seqLen]);
      const targets = await teacherSession.run({ [INPUT_IDS]: input });
      const feeds: Record<string, ort.Tensor> = { [INPUT_IDS]: input };
      if ((o.loss.kl ?? 0) > 0) feeds[REFERENCE_LOGPROBS] = targets[REFERENCE_LOGPROBS];
      if ((o.loss.lm ?? 0) > 0) feeds[TARGETS] = int32Tensor(nextTokens(ids, o.seqLen), [o.batch, o.seqLen]);
      if (cosine) student.layers.forEach((_, i) => (feeds[REFERENCE_HIDDEN(i + 1)] = targets[tapName({ layer: i + 1, site: 'residual' })]));
      return feeds;
    }, { ...o, progressLabel: o.progressLabel ?? 'distillation steps' });
  } finally {
    await teacherSession.release();
  }
}
