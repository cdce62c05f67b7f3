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

/**
 * `--parts a,b`: which parts of a benchmark to run (`defaults` without the flag); a name not among `all` is an error
 * that lists them, not a run that silently times nothing.
 */
export function partsArg(all: readonly string[], defaults: readonly string[] = all): Set<string> {
  const i = process.argv.indexOf('--parts');
  const asked = i < 0 ? defaults : (process.argv[i + 1] ?? '').split(',');
  const unknown = asked.filter((p) => !all.includes(p));
  if (unknown.length > 0) {
    console.error(`--parts: ${unknown.map((p) => JSON.stringify(p)).join(', ')}: expected a comma-separated list of ${all.join(', ')}`);
    process.exit(2);
  }
  return new Set(asked);
}

export function machine() {
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, onnxruntime: ort.env.versions.common, date: new Date().toISOString() };
}

export function writeResult(name: string, value: unknown): string {
  const path = join(RESULTS_DIR, name);
  writeJsonAtomic(path, value);
  return path;
}
