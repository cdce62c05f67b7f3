import { cpus } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { PROJECT_ROOT } from '../src/cli/paths.js';
import { writeJsonAtomic } from '../src/util/atomic.js';

export const RESULTS_DIR = join(PROJECT_ROOT, 'results');

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Runs `fn` `warmup` times untimed, then `repeats` times; returns each timed run's seconds. */
export async function timeRuns(fn: () => Promise<unknown>, repeats: number, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return times;
}

export function machine() {
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, onnxruntime: ort.env.versions.common, date: new Date().toISOString() };
}

export function writeResult(name: string, value: unknown): string {
  const path = join(RESULTS_DIR, name);
  writeJsonAtomic(path, value);
  return path;
}
