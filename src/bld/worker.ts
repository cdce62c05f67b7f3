/**
 * A piscina worker: derives, fits and scores candidates. Each worker loads the parent once and keeps its
 * own onnxruntime sessions; activations arrive in SharedArrayBuffers, so no task copies them.
 */
import { loadCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { MatrixOps } from '../onnx/matmul.js';
import { Runtime, type RuntimeSpec } from '../onnx/runtime.js';
import { DecoderSession } from '../onnx/session.js';
import type { ActivationSet, ValidationSet } from './activations.js';
import { buildCandidate, type CandidateSpec } from './candidate.js';
import type { DeriveOptions } from './derive.js';

export interface WorkerTask {
  readonly modelDir: string;
  readonly calibration: ActivationSet;
  readonly validation: ValidationSet;
  readonly candidate: CandidateSpec;
  readonly runtime: RuntimeSpec;
  readonly options: DeriveOptions;
  readonly bldTokens: number;
}

let parent: Checkpoint | undefined;
let ops: MatrixOps | undefined;
const cache = new Map<string, unknown>();

export default async function score(task: WorkerTask) {
  if (parent?.dir !== task.modelDir) {
    parent = loadCheckpoint(task.modelDir);
    await releaseAll(cache);
  }
  const runtime = new Runtime(task.runtime);
  ops ??= await MatrixOps.create(runtime);
  return buildCandidate(
    { config: parent.config, parent: parent.weights, calibration: task.calibration, validation: task.validation, ops, runtime, options: task.options, bldTokens: task.bldTokens, cache },
    task.candidate,
  );
}

async function releaseAll(c: Map<string, unknown>): Promise<void> {
  for (const v of c.values()) if (v instanceof DecoderSession) await v.release();
  c.clear();
}
