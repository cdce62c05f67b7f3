/**
 * A piscina worker: builds, fits and scores candidates. Each worker loads the parent once and keeps its
 * own onnxruntime sessions; activations arrive in SharedArrayBuffers, so no task copies them.
 */
import { loadCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { MatrixOps } from '../onnx/matmul.js';
import { DecoderSession } from '../onnx/session.js';
import type { ActivationSet, ValidationSet } from './activations.js';
import type { ChannelRanking } from './init.js';
import { runJob, type JobSpec } from './job.js';

export interface WorkerTask {
  readonly modelDir: string;
  readonly calibration: ActivationSet;
  readonly validation: ValidationSet;
  readonly job: JobSpec;
  readonly threads: number;
  readonly ranking: ChannelRanking;
  readonly ridgeGrid: readonly number[];
}

let parent: Checkpoint | undefined;
let ops: MatrixOps | undefined;
const cache = new Map<string, unknown>();

export default async function score(task: WorkerTask) {
  if (parent?.dir !== task.modelDir) {
    parent = loadCheckpoint(task.modelDir);
    await releaseAll(cache);
  }
  ops ??= await MatrixOps.create(task.threads);
  return runJob(
    { config: parent.config, parent: parent.weights, calibration: task.calibration, validation: task.validation, ops, threads: task.threads, ranking: task.ranking, ridgeGrid: task.ridgeGrid, cache },
    task.job,
  );
}

async function releaseAll(c: Map<string, unknown>): Promise<void> {
  for (const v of c.values()) if (v instanceof DecoderSession) await v.release();
  c.clear();
}
