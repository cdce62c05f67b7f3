/**
 * bench:speed's searches of the shared models, shared with bench:gpu so that the two read one block library per
 * model (results/speed/<model>) and solve alike.
 */
import { join } from 'node:path';
import { RIDGE_GRID } from '../src/bld/derive.js';
import type { Runtime } from '../src/onnx/runtime.js';
import { Run } from '../src/run/run.js';
import { solve, type Solution } from '../src/search/solve.js';
import { TesseraError } from '../src/util/errors.js';
import { DEFAULT_SPACE, DEFAULT_TEXT, PROJECT_ROOT, SHARED_DIR } from '../src/util/project.js';

/** The run of a shared model (created, or opened as it was left). */
export const speedRun = (model: string): Run =>
  Run.create(join(PROJECT_ROOT, 'results/speed', model), { model: join(SHARED_DIR, 'models', model), space: DEFAULT_SPACE, data: DEFAULT_TEXT, calibTokens: 4096, validTokens: 2048, seqLen: 128, ranking: 'activation', ridgeGrid: RIDGE_GRID, seed: 0 });

/** The mip-tabu child `tessera solve` picks at ×`budget` under the profile `hardware`; null where none reaches it. */
export async function tesseraChild(run: Run, hardware: string, budget: number, runtime: Runtime): Promise<Solution | null> {
  try {
    const [s] = await solve(run, { hardware, budget: { speedup: budget }, metric: 'kl', strategy: 'mip-tabu', solver: 'highs', timeLimitSeconds: 60, tabuIterations: 50, samples: 100, solutions: 1, diversity: 2, seed: 0, runtime });
    return s;
  } catch (e) {
    if (e instanceof TesseraError) return null;
    throw e;
  }
}
