/**
 * A piscina worker: derives, fits and scores the candidates of one layer per task. Each worker opens the parent (reading only the layers
 * it uses, as it uses them) and keeps its own onnxruntime sessions; activations are read from their files a
 * layer at a time, and the parent's validation distribution arrives in SharedArrayBuffers, so no task copies it.
 */
import { openCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { MatrixOps } from '../onnx/matmul.js';
import { Runtime, type RuntimeSpec } from '../onnx/runtime.js';
import { holding, SessionCache, suffixCacheBytes } from '../onnx/staged.js';
import { fileRows } from '../lm/divergence.js';
import { activationSet, type ActivationFiles, type ActivationSet, type ValidationSet } from './activations.js';
import { buildLayerCandidates, candidateKey, type CandidateScore, type CandidateSpec, type LayerSeconds } from './candidate.js';
import { readCandidateWeights, writeCandidateWeights } from './library.js';
import type { DeriveOptions } from './derive.js';
import type { StoredDtype } from '../model/save.js';

export interface WorkerTask {
  readonly modelDir: string;
  readonly calibration: ActivationFiles;
  /** With the stored reference's file (the parent's log-probabilities), its targets and the parent's NLL. */
  readonly validation: ActivationFiles & { readonly referenceFile: string; readonly vocab: number; readonly targets: Int32Array; readonly parentNll: number };
  /**
   * Candidates of one layer, each with the path its weights are written to — or, for a candidate a first pass
   * scored locally (`stored`), read from, to be scored globally.
   */
  readonly candidates: readonly { readonly spec: CandidateSpec; readonly weightsPath: string; readonly stored?: { readonly score: CandidateScore; readonly weightsSha256: string } }[];
  /** Local scores only (`score --local-only`). */
  readonly localOnly: boolean;
  readonly runtime: RuntimeSpec;
  readonly options: DeriveOptions;
  readonly bldTokens: number;
  readonly weightsDtype: StoredDtype;
  /** Set to 1 by the main thread on an interrupt: the task stops at its next candidate or batch. */
  readonly stop: Int32Array;
  /** Held by the worker building a stage's session (see SessionCache): one build at a time across workers. */
  readonly buildLock: Int32Array;
}

/** What a worker keeps between tasks of the same library. */
interface WorkerState {
  readonly key: string;
  readonly parent: Checkpoint;
  readonly calibration: ActivationSet;
  readonly validation: ValidationSet;
  readonly cache: Map<string, unknown>;
  readonly suffixes: SessionCache;
}

let state: WorkerState | undefined;
let ops: MatrixOps | undefined;

/** What a task returns: each candidate's scores and the hash of the weights file it wrote, and the time it took. */
export interface WorkerResult {
  readonly candidates: readonly { readonly score: CandidateScore; readonly weightsSha256: string }[];
  readonly seconds: LayerSeconds;
}

export default async function score(task: WorkerTask): Promise<WorkerResult> {
  const runtime = new Runtime(task.runtime);
  const key = JSON.stringify([task.modelDir, task.calibration.dir, task.validation.dir]);
  if (state?.key !== key) {
    await state?.suffixes.clear();
    const parent = openCheckpoint(task.modelDir);
    const { referenceFile, vocab, targets, parentNll, windows, seqLen } = task.validation;
    state = {
      key,
      parent,
      calibration: activationSet(task.calibration),
      validation: { ...activationSet(task.validation), reference: fileRows(referenceFile, { windows, seqLen, vocab, targets }), parentNll },
      cache: new Map(),
      // The head and two stages' worth of the parent's last layers stay built: every candidate's score runs them.
      suffixes: new SessionCache(parent.source, suffixCacheBytes(parent.config, parent.architecture, runtime.stageBytes), (build) => holding(task.buildLock, build)),
    };
  }
  ops ??= await MatrixOps.create(runtime);
  const s = state;
  const byKey = new Map(task.candidates.map((c) => [candidateKey(c.spec), c]));
  const hashes = new Map<string, string>();
  const { scores, seconds } = await buildLayerCandidates(
    { config: s.parent.config, parent: s.parent.source, calibration: s.calibration, validation: s.validation, ops, runtime, options: task.options, bldTokens: task.bldTokens, weightsDtype: task.weightsDtype, cache: s.cache, suffixes: s.suffixes, stopped: () => Atomics.load(task.stop, 0) === 1 },
    task.candidates.map((c) => c.spec),
    {
      onLocal: (spec, tensors) => hashes.set(candidateKey(spec), writeCandidateWeights(byKey.get(candidateKey(spec))!.weightsPath, spec, tensors, task.weightsDtype)),
      stored: (spec) => {
        const c = byKey.get(candidateKey(spec))!;
        if (c.stored === undefined) return undefined;
        hashes.set(c.stored.score.key, c.stored.weightsSha256);
        const { kl: _kl, lmLoss: _lmLoss, lmLossDelta: _delta, ...score } = c.stored.score;
        return { spec, score, weights: readCandidateWeights(s.parent.config, spec, c.weightsPath) };
      },
      localOnly: task.localOnly,
    },
  );
  return { candidates: scores.map((score) => ({ score, weightsSha256: hashes.get(score.key)! })), seconds };
}
