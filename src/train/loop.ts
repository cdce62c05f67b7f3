import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import type ort from 'onnxruntime-node';
import type { ModelConfig } from '../arch/config.js';
import type { WindowSet } from '../data/sequences.js';
import { nextTokens } from '../lm/divergence.js';
import { SafetensorsFile, writeSafetensors } from '../model/safetensors.js';
import type { ModelWeights } from '../model/weights.js';
import { gradName } from '../onnx/autodiff.js';
import { emitDecoder, INPUT_IDS } from '../onnx/decoder-graph.js';
import { tapName } from '../onnx/emit.js';
import { GraphBuilder } from '../onnx/graph-builder.js';
import { float32Tensor, int32Tensor, type Runtime } from '../onnx/runtime.js';
import { inferenceWeights } from '../onnx/weight-writer.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { fail } from '../util/errors.js';
import { silent, type Reporter } from '../util/reporter.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { buildTrainingGraph, LOSS, lossTerm, REFERENCE_HIDDEN, REFERENCE_LOGPROBS, TARGETS, type LossWeights } from './graph.js';
import { adamWState, adamWStep, clipGradients, learningRate, type AdamWState } from './optimizer.js';

export interface TrainingOptions {
  readonly steps: number;
  /** Windows per step, and tokens per window. */
  readonly batch: number;
  readonly seqLen: number;
  /** Peak learning rate, reached after `warmup` steps and decayed to zero by a cosine. */
  readonly lr: number;
  readonly warmup: number;
  /** Maximum global gradient norm. */
  readonly clip: number;
  readonly loss: LossWeights;
  readonly seed: number;
  /** Steps between checkpoints in `checkpointDir` (the loop resumes from the latest one). */
  readonly checkpointEvery: number;
  readonly checkpointDir: string;
  /** What the checkpoints are of (inputs and options): a checkpoint of anything else is refused. */
  readonly identity: string;
  readonly runtime: Runtime;
  readonly reporter?: Reporter;
  /** Stops after the current step (a checkpoint is written); rerun to resume. */
  readonly signal?: AbortSignal;
}

export interface TrainingResult {
  readonly status: 'complete' | 'interrupted';
  readonly steps: number;
  readonly resumedFrom: number;
  /** The loss of every step, and of each term. */
  readonly losses: readonly { readonly step: number; readonly loss: number; readonly terms: Readonly<Record<string, number>> }[];
}

/**
 * The windows of step `step`: epochs of the window set, each in an order shuffled by its own seeded
 * generator. A function of (seed, step) alone, so a resumed run draws exactly the batches an uninterrupted one would.
 */
export function batchWindows(windows: number, batch: number, seed: number, step: number): number[] {
  const out: number[] = [];
  for (let k = step * batch; k < (step + 1) * batch; k++) {
    const epoch = Math.floor(k / windows);
    const rng = new Rng(seed * 7919 + epoch);
    const order = Array.from({ length: windows }, (_, i) => i);
    for (let i = windows - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    out.push(order[k % windows]);
  }
  return out;
}

/** The parent as a teacher: its log-probabilities and (for the cosine loss) its residual stream after each layer. */
function teacherGraph(config: ModelConfig, weights: ModelWeights, batch: number, seq: number, hidden: boolean): GraphBuilder {
  const g = new GraphBuilder('tessera_teacher');
  const taps = hidden ? weights.layers.map((_, i) => ({ layer: i + 1, site: 'residual' as const })) : [];
  const { logits } = emitDecoder(g, config, weights, { shape: { batch, seq }, logits: 'all', taps }, inferenceWeights);
  g.expose(g.node('LogSoftmax', [logits!], { axis: -1 }), REFERENCE_LOGPROBS, [batch, seq, config.vocabSize]);
  return g;
}

interface Checkpoint {
  readonly format: 'tessera-training-checkpoint';
  readonly identity: string;
  readonly step: number;
  readonly losses: TrainingResult['losses'];
}

const LATEST = 'latest.json';

/** Writes weights, optimizer moments and progress as one directory, then points `latest.json` at it: a kill at any point leaves the previous checkpoint whole. */
function saveCheckpoint(dir: string, step: number, keys: readonly string[], params: readonly Tensor[], adam: AdamWState, record: Checkpoint): void {
  const name = `step-${String(step).padStart(8, '0')}`;
  const tmp = join(dir, `.${name}.partial-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeSafetensors(join(tmp, 'weights.safetensors'), new Map(keys.map((k, i) => [k, params[i]])));
  const moments = new Map<string, Tensor>();
  keys.forEach((k, i) => {
    moments.set(`m.${k}`, { data: adam.m[i], shape: [adam.m[i].length] });
    moments.set(`v.${k}`, { data: adam.v[i], shape: [adam.v[i].length] });
  });
  writeSafetensors(join(tmp, 'adam.safetensors'), moments);
  rmSync(join(dir, name), { recursive: true, force: true });
  renameSync(tmp, join(dir, name));
  writeJsonAtomic(join(dir, LATEST), { ...record, directory: name });
  for (const old of readdirSync(dir)) if (old.startsWith('step-') && old !== name) rmSync(join(dir, old), { recursive: true, force: true });
}

/** Restores the latest checkpoint into `params` and `adam`; returns it, or null when there is none. */
function loadCheckpoint(dir: string, identity: string, keys: readonly string[], params: readonly Tensor[], adam: AdamWState): Checkpoint | null {
  const latest = join(dir, LATEST);
  if (!existsSync(latest)) return null;
  const record = JSON.parse(readFileSync(latest, 'utf8')) as Checkpoint & { directory: string };
  if (record.format !== 'tessera-training-checkpoint' || record.identity !== identity) {
    fail(`${dir}: holds a checkpoint of another training run (other inputs or options); remove it to start afresh`);
  }
  const read = (file: string, name: string, into: Float32Array) => {
    const f = SafetensorsFile.open(join(dir, record.directory, file));
    try {
      into.set(f.read(name).data);
    } finally {
      f.close();
    }
  };
  keys.forEach((k, i) => {
    read('weights.safetensors', k, params[i].data);
    read('adam.safetensors', `m.${k}`, adam.m[i]);
    read('adam.safetensors', `v.${k}`, adam.v[i]);
  });
  adam.step = record.step;
  return record;
}

function arraysOf(w: ModelWeights): Float32Array[] {
  return [w.embed.data, w.finalNorm.data, w.lmHead.data, ...w.layers.flatMap((l) => [...Object.values(l.attention.tensors), ...Object.values(l.ffn.tensors)].map((t) => t.data))];
}

/**
 * Distils `student` toward `teacher` in place: each step draws a batch of windows, runs the teacher for its
 * targets and the student's training graph for the loss and every gradient, clips them, and takes an AdamW
 * step under warm-up and cosine decay. Checkpoints every `checkpointEvery` steps (and when interrupted); a
 * rerun resumes from the latest and ends with the same weights, bit for bit, as a run never interrupted.
 */
export async function train(config: ModelConfig, student: ModelWeights, teacher: { config: ModelConfig; weights: ModelWeights }, windows: WindowSet, o: TrainingOptions): Promise<TrainingResult> {
  const reporter = o.reporter ?? silent;
  if (windows.count === 0) fail(`${windows.range.file}: too little text for one window of ${o.seqLen} tokens`);
  const training = buildTrainingGraph(config, student, o.batch, o.seqLen, o.loss);
  const keys = [...training.weights.keys()];
  const params = keys.map((k) => training.weights.get(k)!);
  const teacherArrays = new Set(arraysOf(teacher.weights));
  if (params.some((p) => teacherArrays.has(p.data))) throw new Error('the student shares weight arrays with its teacher; training it in place would change the teacher');
  const adam = adamWState(params.map((p) => p.data.length));
  mkdirSync(o.checkpointDir, { recursive: true });
  const resumed = loadCheckpoint(o.checkpointDir, o.identity, keys, params, adam);
  const losses = [...(resumed?.losses ?? [])];
  const first = resumed?.step ?? 0;
  if (first > 0) reporter.stage(`resuming from the checkpoint at step ${first} of ${o.steps} (${basename(o.checkpointDir)})`);

  const cosine = (o.loss.cosine ?? 0) > 0;
  const [studentSession, teacherSession] = [
    await o.runtime.session(training.graph),
    await o.runtime.session(teacherGraph(teacher.config, teacher.weights, o.batch, o.seqLen, cosine)),
  ];
  const checkpoint = (step: number) => saveCheckpoint(o.checkpointDir, step, keys, params, adam, { format: 'tessera-training-checkpoint', identity: o.identity, step, losses });
  const progress = reporter.progress('distillation steps');
  let step = first;
  try {
    for (; step < o.steps; step++) {
      if (o.signal?.aborted) {
        checkpoint(step);
        return { status: 'interrupted', steps: step, resumedFrom: first, losses };
      }
      const ids = new Int32Array(o.batch * o.seqLen);
      batchWindows(windows.count, o.batch, o.seed, step).forEach((w, b) => ids.set(windows.ids.subarray(w * o.seqLen, (w + 1) * o.seqLen), b * o.seqLen));
      const input = int32Tensor(ids, [o.batch, o.seqLen]);
      const targets = await teacherSession.run({ [INPUT_IDS]: input });
      const feeds: Record<string, ort.Tensor> = { [INPUT_IDS]: input };
      if ((o.loss.kl ?? 0) > 0) feeds[REFERENCE_LOGPROBS] = targets[REFERENCE_LOGPROBS];
      if ((o.loss.lm ?? 0) > 0) feeds[TARGETS] = int32Tensor(nextTokens(ids, o.seqLen), [o.batch, o.seqLen]);
      if (cosine) student.layers.forEach((_, i) => (feeds[REFERENCE_HIDDEN(i + 1)] = targets[tapName({ layer: i + 1, site: 'residual' })]));
      keys.forEach((k, i) => (feeds[k] = float32Tensor(params[i].data, params[i].shape)));
      const out = await studentSession.run(feeds);
      const grads = keys.map((k) => out[gradName(k)].data as Float32Array);
      clipGradients(grads, o.clip);
      adamWStep(params.map((p) => p.data), grads, adam, learningRate(step, o.lr, o.warmup, o.steps));
      losses.push({ step, loss: out[LOSS].data[0] as number, terms: Object.fromEntries(training.terms.map((t) => [t, out[lossTerm(t)].data[0] as number])) });
      progress(step + 1, o.steps);
      if ((step + 1) % o.checkpointEvery === 0 && step + 1 < o.steps) checkpoint(step + 1);
    }
  } finally {
    await Promise.all([studentSession.release(), teacherSession.release()]);
  }
  return { status: 'complete', steps: step, resumedFrom: first, losses };
}
