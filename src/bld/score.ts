import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import type { ModelConfig } from '../arch/config.js';
import { attentionParams, ffnParams } from '../arch/params.js';
import type { Architecture } from '../arch/variant.js';
import { cpuRuntime, type Runtime } from '../onnx/runtime.js';
import type { Run } from '../run/run.js';
import type { WindowSet } from '../data/sequences.js';
import type { SearchSpace } from '../space/types.js';
import { fail, TesseraError } from '../util/errors.js';
import { nextTokens } from '../lm/divergence.js';
import { lockDirectory } from '../util/lock.js';
import { PROJECT_ROOT } from '../util/project.js';
import { silent, type Reporter } from '../util/reporter.js';
import { computeActivations } from './activations.js';
import { candidateKey, type CandidateSpec } from './candidate.js';
import type { WorkerResult, WorkerTask } from './worker.js';
import type { RuntimeTarget } from '../targets/runtimes.js';

export interface ScoreOptions {
  /** Worker threads, one onnxruntime thread each. */
  readonly workers: number;
  /** Where graphs run (its thread count is the main process's; workers get one thread each). Default: CPU. */
  readonly runtime?: Runtime;
  /**
   * Only the candidates of layers first..last (inclusive): a library built in parts (a first look at some
   * layers, or days of work split up); each part resumes the same library.
   */
  readonly layers?: { readonly first: number; readonly last: number };
  /**
   * A first pass: fit every candidate and score it locally (NMSE), without the pass through the parent's later
   * layers that its KL takes — most of scoring's time at real sizes. `solve --metric nmse` works on such a
   * library; a later score without it adds the global scores, reusing the fits.
   */
  readonly localOnly?: boolean;
  /** Only the candidates of blocks this inference runtime runs (default: every candidate of the space). */
  readonly target?: RuntimeTarget;
  /** Stops starting new candidates; finished ones stay in the library (Ctrl-C). */
  readonly signal?: AbortSignal;
  readonly reporter?: Reporter;
}

export interface ScoreResult {
  /**
   * Complete: every candidate of the space is in the library. Local: every candidate is, some with local scores
   * only (a first pass). Partial: every candidate of the layers asked for, not of the others. Interrupted: the
   * signal stopped it; rerun to resume.
   */
  readonly status: 'complete' | 'local' | 'partial' | 'interrupted';
  /** Candidates of the space not in the library yet (or, unless local-only, scored locally only). */
  readonly remaining: number;
  /** Candidates computed by this call, and found finished from an earlier one. */
  readonly computed: number;
  readonly resumed: number;
  /** Wall seconds of the parent's pass and of the candidates; of the latter, worker-seconds fitting and scoring locally, and in the global passes. */
  readonly seconds: { readonly activations: number; readonly candidates: number; readonly local: number; readonly global: number };
}

const WORKER = join(PROJECT_ROOT, 'dist/bld/worker.js');

/** Every (layer, sub-block, variant) the space allows, layer by layer so that workers reuse per-layer sessions. */
export function libraryCandidates(space: SearchSpace): CandidateSpec[] {
  return space.layers.flatMap((l, layer) => [
    ...l.attention.map((variant): CandidateSpec => ({ layer, subBlock: 'attention', variant })),
    ...l.ffn.map((variant): CandidateSpec => ({ layer, subBlock: 'ffn', variant })),
  ]);
}

/**
 * The score stage: builds (or resumes) the run's block library — the parent's activations on calibration
 * and validation text, then every candidate derived, fitted and scored in a piscina worker pool. The
 * parent's validation distribution it computes on the way is kept for every later stage.
 */
export async function score(run: Run, o: ScoreOptions): Promise<ScoreResult> {
  if (!existsSync(WORKER)) fail(`${WORKER} is missing: run \`npm run build\` (npm ci does it)`);
  // Two scores of one library would each compute every candidate (and race on its files): one at a time.
  const unlock = lockDirectory(run.paths.library, 'its block library');
  try {
    return await scoreLocked(run, o);
  } finally {
    unlock();
  }
}

async function scoreLocked(run: Run, o: ScoreOptions): Promise<ScoreResult> {
  const reporter = o.reporter ?? silent;
  const library = run.library();
  const space = run.space(o.target);
  const all = libraryCandidates(space);
  const missing = all.filter((c) => !library.has(candidateKey(c)) || (!o.localOnly && library.isLocalOnly(candidateKey(c))));
  const range = o.layers;
  if (range !== undefined && !(0 <= range.first && range.first <= range.last && range.last < space.layers.length)) {
    fail(`--layers ${range.first}-${range.last}: the parent has layers 0-${space.layers.length - 1}`);
  }
  const todo = range === undefined ? missing : missing.filter((c) => c.layer >= range.first && c.layer <= range.last);
  const resumed = all.length - missing.length;
  const seconds = { activations: 0, candidates: 0, local: 0, global: 0 };
  if (todo.length === 0) return finished(run, space, missing.length, 0, resumed, seconds);

  const { calibration: calibWindows, validation: validWindows, seqLen } = run.data();
  const ck = run.parent();
  reporter.stage(`parent activations on ${calibWindows.range.tokens} calibration and ${validWindows.range.tokens} validation tokens`);
  let t0 = performance.now();
  const runtime = o.runtime ?? cpuRuntime(Math.max(o.workers, 1));
  const calibration = (await computeActivations(ck.config, ck.source, calibWindows, seqLen, run.paths.activations('calibration'), runtime, null)).files;
  const validation = await validationPass(run, validWindows, seqLen, runtime);
  seconds.activations = (performance.now() - t0) / 1000;

  const layers = [...new Set(todo.map((c) => c.layer))];
  reporter.stage(`${todo.length} candidates of ${layers.length} layer${layers.length === 1 ? '' : 's'} to build, fit and score (${resumed} already done) with ${o.workers} worker${o.workers === 1 ? '' : 's'}`);
  // The worker is compiled JavaScript: it needs none of the parent's loader flags (tsx's would break its imports).
  const pool = new Piscina({ filename: WORKER, minThreads: o.workers, maxThreads: o.workers, idleTimeout: 1000, execArgv: [] });
  const progress = reporter.progress('candidates');
  const tokens = { calibration: calibWindows.range.tokens, validation: validWindows.range.tokens };
  const workOf = (c: CandidateSpec) => candidateWork(ck.config, ck.architecture, c, tokens, o.localOnly ?? false);
  const workTotal = todo.reduce((w, c) => w + workOf(c), 0);
  let workDone = 0;
  const { ranking, ridgeGrid, bldTokens = 0, weightsDtype = 'F32' } = run.manifest.options;
  let done = 0;
  let failure: unknown = null;
  t0 = performance.now();
  progress(resumed, all.length, 0);
  // A task is a layer's candidates: their global scores share one pass through the parent's later layers. Earlier
  // layers (longer passes) go first, so the last tasks to finish are the short ones.
  const queue = [...layers];
  // An interrupt reaches running tasks through shared memory: each stops at its next candidate or batch (ending
  // a thread inside onnxruntime would take the process with it), since a layer of a real model takes minutes.
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const buildLock = new Int32Array(new SharedArrayBuffer(4));
  const onAbort = () => Atomics.store(stop, 0, 1);
  o.signal?.addEventListener('abort', onAbort);
  const lane = async () => {
    while (queue.length > 0 && !o.signal?.aborted && failure === null) {
      const layer = queue.shift()!;
      const candidates = todo.filter((c) => c.layer === layer).map((spec) => ({ spec, weightsPath: library.paths.candidateWeights(candidateKey(spec)), stored: library.record(candidateKey(spec)) }));
      // One onnxruntime thread per worker: workers × threads never oversubscribe the cores.
      const task: WorkerTask = { modelDir: ck.dir, calibration, validation, candidates, runtime: runtime.withThreads(1).spec, options: { ranking, ridgeGrid }, bldTokens, weightsDtype, stop, buildLock, localOnly: o.localOnly ?? false };
      try {
        const result: WorkerResult = await pool.run(task);
        for (const { score, weightsSha256 } of result.candidates) library.write(score, weightsSha256);
        done += result.candidates.length;
        workDone += candidates.reduce((w, c) => w + workOf(c.spec), 0);
        seconds.local += result.seconds.local;
        seconds.global += result.seconds.global;
        progress(resumed + done, all.length, workDone / workTotal);
      } catch (e) {
        if (!o.signal?.aborted) failure ??= workerError(e, `layer ${layer}`);
      }
    }
  };
  try {
    await Promise.allSettled(Array.from({ length: o.workers }, lane));
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    await pool.destroy();
  }
  if (failure !== null) throw failure;
  seconds.candidates = (performance.now() - t0) / 1000;
  if (done < todo.length) return { status: 'interrupted', remaining: missing.length - done, computed: done, resumed, seconds };
  return finished(run, space, missing.length - done, done, resumed, seconds);
}

/**
 * The parent's pass over the validation windows: activation files, and its log-probabilities streamed into the
 * run's stored reference, which workers read a batch at a time: no process holds the [tokens, vocab] array.
 */
async function validationPass(run: Run, set: WindowSet, seqLen: number, runtime: Runtime): Promise<WorkerTask['validation']> {
  const ck = run.parent();
  const vocab = ck.config.vocabSize;
  const dir = run.paths.activations('validation');
  const referenceFile = run.paths.referenceData;
  // Resuming: the stored reference stands (checked by hash), so only missing activations are computed, no logits.
  const storedNll = run.storedReferenceNll();
  if (storedNll !== null) {
    const { files } = await computeActivations(ck.config, ck.source, set, seqLen, dir, runtime, null);
    return { ...files, referenceFile, vocab, targets: nextTokens(files.ids, seqLen, new Int32Array(new SharedArrayBuffer(files.ids.length * 4))), parentNll: storedNll };
  }
  const writer = run.referenceWriter();
  try {
    const { files, reference } = await computeActivations(ck.config, ck.source, set, seqLen, dir, runtime, (rows) => writer.write(rows));
    const { targets, parentNll } = reference!;
    writer.finish(parentNll);
    return { ...files, referenceFile, vocab, targets, parentNll };
  } catch (e) {
    writer.abort();
    throw e;
  }
}

/** The result of a pass that ran to its end: complete when nothing of the space is missing, else local or partial. */
function finished(run: Run, space: SearchSpace, remaining: number, computed: number, resumed: number, seconds: ScoreResult['seconds']): ScoreResult {
  if (remaining > 0) return { status: 'partial', remaining, computed, resumed, seconds };
  const library = run.library();
  library.writeSummary();
  const localOnly = libraryCandidates(space).filter((c) => library.isLocalOnly(candidateKey(c))).length;
  // A first pass keeps the activations: the global scores still to come need them.
  if (localOnly > 0) return { status: 'local', remaining: localOnly, computed, resumed, seconds };
  // Only unfinished candidates need the activations: a complete library drops them (gigabytes for real models).
  rmSync(join(run.paths.library, 'activations'), { recursive: true, force: true });
  return { status: 'complete', remaining: 0, computed, resumed, seconds };
}

/** Errors cross the worker boundary as plain Errors: restore user errors as TesseraError, name the layer in all. */
function workerError(e: unknown, what: string): Error {
  const err = e as Error;
  if (err?.name === 'TesseraError') return new TesseraError(`${what}: ${err.message}`);
  const wrapped = new Error(`${what}: ${err?.message ?? String(e)}`);
  wrapped.stack = err?.stack;
  return wrapped;
}

/**
 * A candidate's share of the scoring work, in tokens × parameters: its fit reads its layer's calibration
 * rows, and its global score runs the validation tokens through every later layer and the head — so an early
 * layer's candidates cost more than a late one's (about 2.4× at 1B) and an ETA must follow work, not counts.
 */
export function candidateWork(config: ModelConfig, parent: Architecture, c: CandidateSpec, tokens: { calibration: number; validation: number }, localOnly: boolean): number {
  const layer = (i: number) => attentionParams(config, parent[i].attention) + ffnParams(config, parent[i].ffn);
  const fit = tokens.calibration * layer(c.layer);
  if (localOnly) return fit;
  let later = config.vocabSize * config.hiddenSize;
  for (let i = c.layer + 1; i < parent.length; i++) later += layer(i);
  return fit + tokens.validation * later;
}
