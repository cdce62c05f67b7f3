import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { Piscina } from 'piscina';
import { loadCheckpoint } from '../model/checkpoint.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { paragraphs, readText } from '../data/text.js';
import { loadSearchSpace } from '../space/expand.js';
import { PROJECT_ROOT, TESSERA_VERSION } from '../util/project.js';
import { fail, TesseraError } from '../util/errors.js';
import { parentArchitecture } from '../arch/config.js';
import { openTensorSource } from '../model/tensor-source.js';
import { parentActivations, type ActivationSet, type ValidationSet } from './activations.js';
import { distillationData } from './data.js';
import type { ChannelRanking } from './derive.js';
import { candidateKey, type CandidateScore, type CandidateSpec } from './candidate.js';
import { BlockLibrary, LIBRARY_FORMAT, sha256, type LibraryManifest } from './library.js';
import type { Tensor } from '../util/tensor.js';
import type { WorkerTask } from './worker.js';
import { cpuRuntime } from '../onnx/runtime.js';

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
export function libraryCandidates(space: ReturnType<typeof loadSearchSpace>): CandidateSpec[] {
  return space.layers.flatMap((l, layer) => [
    ...l.attention.map((variant): CandidateSpec => ({ layer, subBlock: 'attention', variant })),
    ...l.ffn.map((variant): CandidateSpec => ({ layer, subBlock: 'ffn', variant })),
  ]);
}

/**
 * Builds (or resumes) a block library: the parent's activations on calibration and validation text,
 * then every candidate built, fitted and scored in a piscina worker pool.
 */
export async function buildLibrary(options: ScoreOptions): Promise<ScoreResult> {
  // Absolute paths in the manifest, so `tessera solve --run` works from any directory.
  const o = { ...options, model: resolve(options.model), space: resolve(options.space), data: resolve(options.data), out: resolve(options.out) };
  if (!existsSync(WORKER)) fail(`${WORKER} is missing: run \`npm run build\` (npm ci does it)`);
  const ck = loadCheckpoint(o.model);
  if (JSON.stringify(ck.architecture) !== JSON.stringify(parentArchitecture(ck.config))) {
    fail(`${o.model}: has per-layer block_configs; a block library is built from a uniform Llama-family parent`);
  }
  const space = loadSearchSpace(o.space, ck.config);
  const docs = paragraphs(readText(o.data));
  if (o.seqLen > ck.config.maxPositions) fail(`option --seq-len: ${o.seqLen} exceeds the model's ${ck.config.maxPositions} positions`);
  const data = distillationData(loadTokenizer(o.model), docs, o.data, { seqLen: o.seqLen, calibTokens: o.calibTokens, validTokens: o.validTokens });
  const manifest: LibraryManifest = {
    format: LIBRARY_FORMAT,
    version: 1,
    parent: { dir: o.model, configSha256: sha256(readFileSync(join(o.model, 'config.json'))), weightsFingerprint: weightsFingerprint(o.model), sourceArchitecture: ck.config.sourceArchitecture },
    space: { file: o.space, name: space.name, sha256: sha256(JSON.stringify(space.layers)) },
    data: { seqLen: o.seqLen, calibration: data.calibration.range, validation: data.validation.range },
    options: { ranking: o.ranking, ridgeGrid: o.ridgeGrid, seed: o.seed },
    versions: { tessera: TESSERA_VERSION, onnxruntime: ort.env.versions.common, node: process.version },
    created: new Date().toISOString(),
  };
  const library = BlockLibrary.open(o.out, manifest);
  const all = libraryCandidates(space);
  const todo = all.filter((c) => !library.has(candidateKey(c)));
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
  const runtime = cpuRuntime(Math.max(o.workers, 1));
  const calibration = (await parentActivations(ck.config, ck.weights, data.calibration, o.seqLen, false, runtime)) as ActivationSet;
  const validation = (await parentActivations(ck.config, ck.weights, data.validation, o.seqLen, true, runtime)) as ValidationSet;
  seconds.activations = (performance.now() - t0) / 1000;

  o.onStage?.(`${todo.length} candidates to build, fit and score (${resumed} already done) with ${o.workers} worker${o.workers === 1 ? '' : 's'}`);
  // The worker is compiled JavaScript: it needs none of the parent's loader flags (tsx's would break its imports).
  const pool = new Piscina({ filename: WORKER, minThreads: o.workers, maxThreads: o.workers, idleTimeout: 1000, execArgv: [] });
  let done = 0;
  let failure: unknown = null;
  t0 = performance.now();
  o.onProgress?.(resumed, all.length);
  // Keep just enough jobs in flight to fill the workers, so that an interrupt (or a failure) starts nothing new.
  const queue = [...todo];
  const lane = async () => {
    while (queue.length > 0 && !o.signal?.aborted && failure === null) {
      const candidate = queue.shift()!;
      const task: WorkerTask = { modelDir: o.model, calibration, validation, candidate, runtime: runtime.withThreads(threads).spec, options: { ranking: o.ranking, ridgeGrid: o.ridgeGrid } };
      try {
        const result: { score: CandidateScore; tensors: Record<string, Tensor> } = await pool.run(task);
        library.write(result.score, result.tensors);
        done++;
        o.onProgress?.(resumed + done, all.length);
      } catch (e) {
        failure ??= workerError(e, candidateKey(candidate));
      }
    }
  };
  try {
    await Promise.allSettled(Array.from({ length: o.workers }, lane));
  } finally {
    await pool.destroy();
  }
  if (failure !== null) throw failure;
  const interrupted = queue.length > 0;
  seconds.jobs = (performance.now() - t0) / 1000;
  if (!interrupted) library.writeSummary();
  return { library, computed: done, resumed, interrupted, seconds };
}

/** Errors cross the worker boundary as plain Errors: restore user errors as TesseraError, name the job in all. */
function workerError(e: unknown, key: string): Error {
  const err = e as Error;
  if (err?.name === 'TesseraError') return new TesseraError(`candidate ${key}: ${err.message}`);
  const wrapped = new Error(`candidate ${key}: ${err?.message ?? String(e)}`);
  wrapped.stack = err?.stack;
  return wrapped;
}

/**
 * What identifies the parent's weights without reading them all: each weight file's size and the hash of
 * its first and last MiB (headers and a sample of the data), so a fine-tune of the same shape differs.
 */
function weightsFingerprint(dir: string): string {
  const source = openTensorSource(dir);
  const files = source.files;
  source.close();
  const parts = files.map((f) => {
    const size = statSync(f).size;
    const fd = openSync(f, 'r');
    try {
      const n = Math.min(size, 1 << 20);
      const head = Buffer.alloc(n);
      const tail = Buffer.alloc(n);
      readSync(fd, head, 0, n, 0);
      readSync(fd, tail, 0, n, size - n);
      return `${basename(f)}:${size}:${sha256(Buffer.concat([head, tail]))}`;
    } finally {
      closeSync(fd);
    }
  });
  return sha256(parts.join('|'));
}
