import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { Piscina } from 'piscina';
import { loadCheckpoint } from '../model/checkpoint.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { paragraphs, readText } from '../data/text.js';
import { loadSearchSpace } from '../space/expand.js';
import { PROJECT_ROOT, TESSERA_VERSION } from '../util/project.js';
import { fail } from '../util/errors.js';
import { parentActivations, type ActivationSet, type ValidationSet } from './activations.js';
import { distillationData } from './data.js';
import type { ChannelRanking } from './init.js';
import { jobKey, type CandidateScore, type JobSpec } from './job.js';
import { BlockLibrary, LIBRARY_FORMAT, sha256, type LibraryManifest } from './library.js';
import type { Tensor } from '../util/tensor.js';
import type { WorkerTask } from './worker.js';

/** Relative ridge strengths tried for every refit (chosen on held-out calibration rows). */
export const RIDGE_GRID: readonly number[] = [1e-3, 1e-1];

export interface ScoreOptions {
  readonly model: string;
  readonly space: string;
  readonly data: string;
  readonly out: string;
  readonly calibTokens: number;
  readonly validTokens: number;
  readonly seqLen: number;
  readonly workers: number;
  readonly ranking: ChannelRanking;
  readonly ridgeGrid: readonly number[];
  readonly seed: number;
  /** Stops starting new jobs; finished ones stay in the library (Ctrl-C). */
  readonly signal?: AbortSignal;
  readonly onProgress?: (done: number, total: number) => void;
  readonly onStage?: (stage: string) => void;
}

export interface ScoreResult {
  readonly library: BlockLibrary;
  /** Jobs computed by this run, and found finished from an earlier one. */
  readonly computed: number;
  readonly resumed: number;
  readonly interrupted: boolean;
  readonly seconds: { readonly activations: number; readonly jobs: number };
}

const WORKER = join(PROJECT_ROOT, 'dist/bld/worker.js');

/** Every (layer, sub-block, variant) the space allows, layer by layer so that workers reuse per-layer sessions. */
export function libraryJobs(space: ReturnType<typeof loadSearchSpace>): JobSpec[] {
  return space.layers.flatMap((l, layer) => [
    ...l.attention.map((variant): JobSpec => ({ layer, subBlock: 'attention', variant })),
    ...l.ffn.map((variant): JobSpec => ({ layer, subBlock: 'ffn', variant })),
  ]);
}

/**
 * Builds (or resumes) a block library: the parent's activations on calibration and validation text,
 * then every candidate built, fitted and scored in a piscina worker pool.
 */
export async function buildLibrary(o: ScoreOptions): Promise<ScoreResult> {
  const ck = loadCheckpoint(o.model);
  const space = loadSearchSpace(o.space, ck.config);
  const docs = paragraphs(readText(o.data));
  if (o.seqLen > ck.config.maxPositions) fail(`option --seq-len: ${o.seqLen} exceeds the model's ${ck.config.maxPositions} positions`);
  const data = distillationData(loadTokenizer(o.model), docs, o.data, { seqLen: o.seqLen, calibTokens: o.calibTokens, validTokens: o.validTokens });
  const manifest: LibraryManifest = {
    format: LIBRARY_FORMAT,
    version: 1,
    parent: { dir: o.model, configSha256: sha256(readFileSync(join(o.model, 'config.json'))), weightBytes: weightBytes(o.model), sourceArchitecture: ck.config.sourceArchitecture },
    space: { file: o.space, name: space.name, sha256: sha256(JSON.stringify(space.layers)) },
    data: { seqLen: o.seqLen, calibration: data.calibration.range, validation: data.validation.range },
    options: { ranking: o.ranking, ridgeGrid: o.ridgeGrid, seed: o.seed },
    versions: { tessera: TESSERA_VERSION, onnxruntime: ort.env.versions.common, node: process.version },
    created: new Date().toISOString(),
  };
  const library = BlockLibrary.open(o.out, manifest);
  const all = libraryJobs(space);
  const todo = all.filter((j) => !library.has(jobKey(j)));
  const resumed = all.length - todo.length;
  const seconds = { activations: 0, jobs: 0 };
  if (todo.length === 0) {
    library.writeSummary();
    return { library, computed: 0, resumed, interrupted: false, seconds };
  }

  // One onnxruntime thread per worker: workers × threads never oversubscribe the cores.
  const threads = 1;
  o.onStage?.(`parent activations on ${data.calibration.range.tokens} calibration and ${data.validation.range.tokens} validation tokens`);
  let t0 = performance.now();
  const calibration = (await parentActivations(ck.config, ck.weights, data.calibration, o.seqLen, false, Math.max(o.workers, 1))) as ActivationSet;
  const validation = (await parentActivations(ck.config, ck.weights, data.validation, o.seqLen, true, Math.max(o.workers, 1))) as ValidationSet;
  seconds.activations = (performance.now() - t0) / 1000;

  if (!existsSync(WORKER)) throw new Error(`${WORKER} is missing: run \`npm run build\``);
  o.onStage?.(`${todo.length} candidates to build, fit and score (${resumed} already done) with ${o.workers} worker${o.workers === 1 ? '' : 's'}`);
  // The worker is compiled JavaScript: it needs none of the parent's loader flags (tsx's would break its imports).
  const pool = new Piscina({ filename: WORKER, minThreads: o.workers, maxThreads: o.workers, idleTimeout: 1000, execArgv: [] });
  let done = 0;
  let interrupted = false;
  t0 = performance.now();
  o.onProgress?.(resumed, all.length);
  // Keep just enough jobs in flight to fill the workers, so that an interrupt starts nothing new.
  const queue = [...todo];
  const lane = async () => {
    while (queue.length > 0 && !o.signal?.aborted) {
      const job = queue.shift()!;
      const task: WorkerTask = { modelDir: o.model, calibration, validation, job, threads, ranking: o.ranking, ridgeGrid: o.ridgeGrid };
      const result: { score: CandidateScore; tensors: Record<string, Tensor> } = await pool.run(task);
      library.write(result.score, result.tensors);
      done++;
      o.onProgress?.(resumed + done, all.length);
    }
  };
  try {
    await Promise.all(Array.from({ length: o.workers }, lane));
  } finally {
    await pool.destroy();
  }
  interrupted = queue.length > 0;
  seconds.jobs = (performance.now() - t0) / 1000;
  if (!interrupted) library.writeSummary();
  return { library, computed: done, resumed, interrupted, seconds };
}

function weightBytes(dir: string): number {
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return statSync(single).size;
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  return [...new Set(Object.values(index.weight_map))].reduce((s, f) => s + statSync(join(dir, f)).size, 0);
}
