import { cpus } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { PROJECT_ROOT } from '../src/util/project.js';
import { writeJsonAtomic } from '../src/util/atomic.js';

export const RESULTS_DIR = join(PROJECT_ROOT, 'results');

export { median, timeRuns } from '../src/util/timing.js';

/** bench:baselines' methods: the name its tables give each, and the `tessera solve` strategy that builds its children. */
export const BASELINE_METHODS = { tessera: 'mip-tabu', greedy: 'greedy', 'random search': 'random', 'uniform FFN width': 'uniform-width', 'uniform KV heads': 'uniform-kv-heads', 'depth (Block Influence)': 'depth' } as const;
export type BaselineMethod = keyof typeof BASELINE_METHODS;

export function machine() {
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, onnxruntime: ort.env.versions.common, date: new Date().toISOString() };
}

export function writeResult(name: string, value: unknown): string {
  const path = join(RESULTS_DIR, name);
  writeJsonAtomic(path, value);
  return path;
}
