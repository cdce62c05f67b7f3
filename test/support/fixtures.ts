import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll } from 'vitest';
import type { ModelConfig } from '../../src/arch/config.js';
import { parseModelConfig } from '../../src/model/config.js';
import type { StoredDtype } from '../../src/model/save.js';
import { llamaConfigJson } from '../../src/model/random.js';
import { cpuRuntime } from '../../src/onnx/runtime.js';
import { RIDGE_GRID } from '../../src/bld/derive.js';
import { score, type ScoreResult } from '../../src/bld/score.js';
import type { BlockLibrary } from '../../src/bld/library.js';
import { Run } from '../../src/run/run.js';
import { silent } from '../../src/util/reporter.js';

/** One onnxruntime thread: test files run two at a time on two cores. */
export const RUNTIME = cpuRuntime(1);

export const SHARED = resolve(import.meta.dirname, '../../../shared');
export const SHARED_MODELS = ['stories260K', 'babyllama-tok105-1M'] as const;
export const modelDir = (name: string) => join(SHARED, 'models', name);
export const TINYSTORIES = join(SHARED, 'corpus/tinystories_valid_head.txt');

/** A temporary directory removed after the test file. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function configOf(sizes: Parameters<typeof llamaConfigJson>[0]): ModelConfig {
  return parseModelConfig('test-config.json', llamaConfigJson(sizes));
}

/** What tests vary when they build a block library (the rest: activation ranking, the default ridge grid, seed 0). */
export interface LibraryBuild {
  model: string;
  space: string;
  data: string;
  out: string;
  calibTokens: number;
  validTokens: number;
  seqLen: number;
  workers: number;
  bldTokens?: number;
  /** float32 bytes of weights a session may hold (default: the runtime's; tiny values force one layer per stage). */
  stageBytes?: number;
  /** Only these layers' candidates (`tessera score --layers`). */
  layers?: { first: number; last: number };
  /** A first pass with local scores only (`tessera score --local-only`). */
  localOnly?: boolean;
  /** How candidates' weights are stored (`tessera score --dtype`; default the parent's). */
  weightsDtype?: StoredDtype;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** Creates (or reopens) a run and runs its score stage, as `tessera score` does. */
export async function buildLibrary(b: LibraryBuild): Promise<ScoreResult & { run: Run; library: BlockLibrary }> {
  const run = Run.create(b.out, { ...b, ranking: 'activation', ridgeGrid: RIDGE_GRID, seed: 0 });
  const runtime = b.stageBytes === undefined ? undefined : cpuRuntime(Math.max(b.workers, 1), b.stageBytes);
  const r = await score(run, { workers: b.workers, runtime, layers: b.layers, localOnly: b.localOnly, signal: b.signal, reporter: { ...silent, progress: () => b.onProgress ?? (() => {}) } });
  return { ...r, run, library: run.library() };
}
