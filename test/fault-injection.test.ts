import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rng } from '../src/util/rng.js';
import { modelDir, TINYSTORIES, tempDir } from './support/fixtures.js';

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin/tessera.js');
const root = tempDir();

/** Every file under `dir` (its path and bytes), except what a run may write differently by design (timestamps, logs). */
function contents(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p).toString('base64'));
    }
  };
  walk(dir);
  return out;
}

/** The same JSON with the fields that record when and how long (not what) removed. */
const timeless = (text: string) => JSON.stringify(JSON.parse(text), (k, v) => (['created', 'seconds', 'date', 'wallSeconds', 'timings'].includes(k) ? undefined : v));

function same(a: Map<string, string>, b: Map<string, string>) {
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  for (const [k, v] of a) {
    const w = b.get(k)!;
    if (k.endsWith('.json')) expect(timeless(Buffer.from(w, 'base64').toString()), k).toBe(timeless(Buffer.from(v, 'base64').toString()));
    else expect(w === v, k).toBe(true);
  }
}

/** Starts the CLI and SIGKILLs it after `ms` (if still running); resolves when it is gone. */
async function killedAfter(args: readonly string[], ms: number): Promise<void> {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore', env: { ...process.env, TESSERA_NO_RELAUNCH: '1' } });
  const timer = setTimeout(() => proc.kill('SIGKILL'), ms);
  await new Promise((r) => proc.once('exit', r));
  clearTimeout(timer);
}

/** Runs the CLI to its end; returns its wall milliseconds. */
const run = (args: readonly string[]) => {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, TESSERA_NO_RELAUNCH: '1' } });
  expect(r.status, r.stderr).toBe(0);
  return performance.now() - t0;
};

describe('killed at random points, rerun: the same outputs as an uninterrupted run', () => {
  const space = join(ROOT, 'search-spaces/kv-heads.json');
  const scoreArgs = (out: string) => ['score', '--model', modelDir('stories260K'), '--space', space, '--data', TINYSTORIES, '--calib-tokens', '512', '--valid-tokens', '256', '--seq-len', '64', '--workers', '1', '--out', out];
  const solveArgs = (out: string) => ['solve', '--run', out, '--params-ratio', '0.97', '--tabu-iterations', '3'];

  it('score, solve and export, each killed (SIGKILL) at seeded random moments and run again', async () => {
    const whole = join(root, 'whole');
    const ms = { score: run(scoreArgs(whole)), solve: run(solveArgs(whole)), export: 0 };
    const [solution] = readdirSync(join(whole, 'solutions'));
    ms.export = run(['export', join(whole, 'solutions', solution)]);
    const expected = contents(join(whole, 'library', 'candidates'));

    for (const seed of [1, 2]) {
      const rng = new Rng(seed);
      // A moment within the uninterrupted run's duration (10–90% of it), so kills land mid-work on any machine.
      const moment = (total: number) => total * (0.1 + (0.8 * rng.int(1000)) / 1000);
      const out = join(root, `killed-${seed}`);
      // Each stage killed twice (activations, fits, writes: wherever the moment falls), then completed.
      for (let k = 0; k < 2; k++) await killedAfter(scoreArgs(out), moment(ms.score));
      run(scoreArgs(out));
      same(expected, contents(join(out, 'library', 'candidates')));
      expect(timeless(readFileSync(join(out, 'library', 'scores.json'), 'utf8'))).toBe(timeless(readFileSync(join(whole, 'library', 'scores.json'), 'utf8')));
      for (let k = 0; k < 2; k++) await killedAfter(solveArgs(out), moment(ms.solve));
      run(solveArgs(out));
      expect(readdirSync(join(out, 'solutions'))).toEqual([solution]);
      expect(timeless(readFileSync(join(out, 'solutions', solution, 'spec.json'), 'utf8')).replaceAll(out, whole)).toBe(timeless(readFileSync(join(whole, 'solutions', solution, 'spec.json'), 'utf8')));
      for (let k = 0; k < 2; k++) await killedAfter(['export', join(out, 'solutions', solution)], moment(ms.export));
      run(['export', join(out, 'solutions', solution)]);
      const child = (dir: string) => join(dir, 'children', solution);
      for (const f of ['model.safetensors', 'config.json']) expect(readFileSync(join(child(out), f)).equals(readFileSync(join(child(whole), f))), f).toBe(true);
      // Nothing half-written is left beside the outputs.
      expect(readdirSync(join(out, 'children')).filter((n) => n.includes('partial'))).toEqual([]);
      expect(existsSync(join(out, 'library', '.lock'))).toBe(false);
    }
  }, 600_000);
});
