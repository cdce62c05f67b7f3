import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import type ort from 'onnxruntime-node';
import { SafetensorsFile, writeSafetensors } from '../model/safetensors.js';
import type { Runtime } from '../onnx/runtime.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { fail } from '../util/errors.js';
import { silent, type Reporter } from '../util/reporter.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { LOSS, lossTerm, type TrainingGraph } from './graph.js';
import { adamWScalars, adamWState, learningRate, optimizerFeeds, optimizerOutputs, type AdamWScalars, type AdamWState } from './optimizer.js';

export interface TrainingOptions {
  readonly steps: number;
  /** Peak learning rate, reached after `warmup` steps and decayed to zero by a cosine. */
  readonly lr: number;
  readonly warmup: number;
  /** Checkpoints every `every` steps in `dir` (the loop resumes from the latest), of a run identified by `identity`. */
  readonly checkpoint?: { readonly every: number; readonly dir: string; readonly identity: string };
  readonly runtime: Runtime;
  readonly reporter?: Reporter;
  readonly progressLabel?: string;
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
function loadCheckpoint(dir: string, identity: string, keys: readonly string[], params: readonly Float32Array[], adam: AdamWState): Checkpoint | null {
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
    read('weights.safetensors', k, params[i]);
    read('adam.safetensors', `m.${k}`, adam.m[i]);
    read('adam.safetensors', `v.${k}`, adam.v[i]);
  });
  adam.step = record.step;
  return record;
}

/** The token ids [batch, seqLen] of step `step`: the windows `batchWindows` draws, end to end. */
export function batchIds(windows: { readonly count: number; readonly ids: Int32Array }, batch: number, seqLen: number, seed: number, step: number): Int32Array {
  const ids = new Int32Array(batch * seqLen);
  batchWindows(windows.count, batch, seed, step).forEach((w, b) => ids.set(windows.ids.subarray(w * seqLen, (w + 1) * seqLen), b * seqLen));
  return ids;
}

/** What one step trains on: the training graph's inputs other than its weights (ids, targets), for step `step`. */
export type StepInputs = (step: number) => Promise<Record<string, ort.Tensor>>;

/** The weights and optimizer moments a step starts from; a step returns the next ones (new arrays or these, updated). */
export interface OptimizerState {
  readonly weights: readonly Float32Array[];
  readonly m: readonly Float32Array[];
  readonly v: readonly Float32Array[];
}

/** What the training loop drives: the weights it trains (keys and shapes) and one AdamW step of them. */
export interface Trainer {
  readonly keys: readonly string[];
  readonly shapes: readonly (readonly number[])[];
  readonly terms: readonly string[];
  step(step: number, scalars: AdamWScalars, state: OptimizerState): Promise<OptimizerState & { readonly loss: number; readonly terms: Readonly<Record<string, number>> }>;
}

/**
 * Trains the weights of a training graph in place: each step feeds the step's inputs and the current weights,
 * reads the loss and every gradient, clips them, and takes an AdamW step under warm-up and cosine decay. With
 * `checkpoint`, it saves every `every` steps (and when interrupted); a rerun resumes from the latest and ends
 * with the same weights, bit for bit, as a run never interrupted.
 */
export async function optimize(training: TrainingGraph, inputs: StepInputs, o: TrainingOptions): Promise<TrainingResult> {
  if (training.optimizer === null) throw new Error('optimize() needs a training graph that takes the optimizer step');
  const keys = [...training.weights.keys()];
  const tensors = keys.map((k) => training.weights.get(k)!);
  const shapes = tensors.map((t) => t.shape);
  const session = await o.runtime.session(training.graph, { repeated: true });
  try {
    const trainer: Trainer = {
      keys,
      shapes,
      terms: training.terms,
      step: async (step, scalars, state) => {
        const out = await session.run({ ...(await inputs(step)), ...optimizerFeeds(scalars, keys, shapes, state) });
        return {
          ...optimizerOutputs(out, keys),
          loss: out[LOSS].data[0] as number,
          terms: Object.fromEntries(training.terms.map((t) => [t, out[lossTerm(t)].data[0] as number])),
        };
      },
    };
    const r = await train(trainer, tensors.map((t) => t.data), o);
    // The trained values back into the weights the caller holds.
    if (r.status === 'complete') tensors.forEach((t, i) => t.data.set(r.weights[i]));
    return r;
  } finally {
    await session.release();
  }
}

/**
 * The training loop: AdamW steps of a trainer from weights `initial` under warm-up and cosine decay. With
 * `checkpoint`, it saves every `every` steps (and when interrupted); a rerun resumes from the latest and ends
 * with the same weights, bit for bit, as a run never interrupted. Returns the weights after the last step.
 */
export async function train(trainer: Trainer, initial: readonly Float32Array[], o: TrainingOptions): Promise<TrainingResult & { readonly weights: readonly Float32Array[] }> {
  const reporter = o.reporter ?? silent;
  const { keys, shapes } = trainer;
  // The caller's arrays, until the first step returns new ones (a resumed checkpoint is read into them).
  const weights: Float32Array[] = [...initial];
  const adam = adamWState(weights.map((p) => p.length));
  let resumed: Checkpoint | null = null;
  if (o.checkpoint !== undefined) {
    mkdirSync(o.checkpoint.dir, { recursive: true });
    resumed = loadCheckpoint(o.checkpoint.dir, o.checkpoint.identity, keys, weights, adam);
  }
  const losses = [...(resumed?.losses ?? [])];
  const first = resumed?.step ?? 0;
  if (first > 0) reporter.stage(`resuming from the checkpoint at step ${first} of ${o.steps} (${basename(o.checkpoint!.dir)})`);
  const checkpoint = (step: number) => {
    if (o.checkpoint !== undefined) saveCheckpoint(o.checkpoint.dir, step, keys, weights.map((data, i) => ({ data, shape: shapes[i] })), adam, { format: 'tessera-training-checkpoint', identity: o.checkpoint.identity, step, losses });
  };
  const progress = reporter.progress(o.progressLabel ?? 'training steps');
  progress(first, o.steps);
  let step = first;
  for (; step < o.steps; step++) {
    if (o.signal?.aborted) {
      checkpoint(step);
      return { status: 'interrupted', steps: step, resumedFrom: first, losses, weights };
    }
    const next = await trainer.step(step, adamWScalars(step, learningRate(step, o.lr, o.warmup, o.steps)), { weights, m: adam.m, v: adam.v });
    keys.forEach((_, i) => {
      weights[i] = next.weights[i];
      adam.m[i] = next.m[i];
      adam.v[i] = next.v[i];
    });
    adam.step = step + 1;
    losses.push({ step, loss: next.loss, terms: next.terms });
    progress(step + 1, o.steps);
    if (o.checkpoint !== undefined && (step + 1) % o.checkpoint.every === 0 && step + 1 < o.steps) checkpoint(step + 1);
  }
  return { status: 'complete', steps: step, resumedFrom: first, losses, weights };
}
