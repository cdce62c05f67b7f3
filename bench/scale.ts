/**
 * Real-size models: peak memory (RSS) and wall time of every command at the shapes users bring — SmolLM2-135M,
 * Llama-3.2-1B and Llama-3.1-8B with seeded random bf16 weights and their real config.json — each command in a
 * fresh process under /usr/bin/time -v, as a user would run it. Writes results/bench-scale.{json,md}.
 *
 *   npm run bench:scale [-- --shapes SmolLM2-135M,Llama-3.2-1B] [-- --scratch DIR]
 *
 * Checkpoints are written once to the scratch directory (default: $TMPDIR/tessera-bench-scale; the 8B one is
 * 16 GB) and reused. Long commands are stopped with SIGINT after a time limit (score is resumable); their rate
 * is measured and the full run's time projected.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../src/util/atomic.js';
import { table } from '../src/util/format.js';
import { PROJECT_ROOT } from '../src/util/project.js';
import { machine, writeResult } from './support.js';
import { randomCheckpoint, SHAPES, type ModelShape } from './shapes.js';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const scratch = arg('--scratch') ?? join(tmpdir(), 'tessera-bench-scale');
const wanted = arg('--shapes')?.split(',') ?? SHAPES.map((s) => s.name);
const CLI = join(PROJECT_ROOT, 'bin/tessera.js');
const TEXT = join(PROJECT_ROOT, '../shared/corpus/tinystories_valid_head.txt');
const SPACE = join(PROJECT_ROOT, 'search-spaces/puzzle.json');

interface Measured {
  readonly shape: string;
  readonly command: string;
  readonly args: string[];
  readonly peakRssGB: number;
  readonly seconds: number;
  readonly exit: number | null;
  readonly outcome: 'ok' | 'stopped at the time limit' | 'failed' | 'killed';
  readonly note: string;
  readonly tail: string;
}

/** Runs the CLI under /usr/bin/time -v; SIGINT after `limitSeconds` (the commands stop cleanly on it). */
function measure(shape: string, command: string, args: string[], limitSeconds: number): Measured {
  const started = performance.now();
  const r = spawnSync('/usr/bin/time', ['-v', 'timeout', '-s', 'INT', '-k', '60', String(limitSeconds), 'node', CLI, command, ...args], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const seconds = (performance.now() - started) / 1000;
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1] ?? NaN) * 1024;
  const out = `${r.stdout}\n${r.stderr.split('\tCommand being timed')[0]}`;
  const exit = r.status;
  // timeout exits 124 when it had to send SIGINT; the CLI itself exits 130 when it stopped on it.
  const outcome = exit === 0 ? 'ok' : exit === 124 || exit === 130 ? 'stopped at the time limit' : /signal 9|Killed/.test(r.stderr) ? 'killed' : 'failed';
  const m: Measured = { shape, command, args, peakRssGB: rss / 1e9, seconds, exit, outcome, note: '', tail: out.trim().split('\n').slice(-6).join('\n') };
  console.log(`${shape} · ${command} ${args.join(' ')}: ${(rss / 1e9).toFixed(2)} GB peak, ${seconds.toFixed(0)} s, ${outcome}`);
  return m;
}

/** Candidates finished by a score run, from its library on disk. */
const candidatesIn = (run: string) => (existsSync(join(run, 'library/candidates')) ? readdirSync(join(run, 'library/candidates')).filter((f) => f.endsWith('.json')).length : 0);

function benchShape(shape: ModelShape): Measured[] {
  const dir = randomCheckpoint(shape, join(scratch, shape.name));
  const run = join(scratch, `${shape.name}-run`);
  const big = shape.name.includes('8B');
  const rows: Measured[] = [];
  rows.push(measure(shape.name, 'inspect', [dir], 600));
  rows.push(measure(shape.name, 'cost', [dir, '--hardware', join(PROJECT_ROOT, 'hardware-profiles/h100-sxm.json')], 600));
  rows.push(measure(shape.name, 'perplexity', [dir, '--data', TEXT, '--tokens', '512', '--threads', '2'], 3600));
  if (!big) rows.push(measure(shape.name, 'perplexity', [dir, '--data', TEXT, '--threads', '2'], 3600));
  // score: default settings (4096 calibration, 2048 validation tokens, 2 workers); 8B: a first pass with fewer tokens.
  const scoreArgs = ['--model', dir, '--space', SPACE, '--data', TEXT, '--out', run, '--workers', '2', ...(big ? ['--calib-tokens', '1024', '--valid-tokens', '512'] : [])];
  const before = candidatesIn(run);
  const s = measure(shape.name, 'score', scoreArgs, big ? 3600 : 5400);
  const done = candidatesIn(run) - before;
  const total = Number(/(\d+) candidates to build/.exec(s.tail)?.[1] ?? NaN);
  rows.push({ ...s, note: `${done} candidates in ${s.seconds.toFixed(0)} s${s.outcome === 'ok' ? '' : `; the whole library projected at ${((s.seconds / Math.max(done, 1)) * (total || NaN) / 3600).toFixed(1)} h`}` });
  if (s.outcome !== 'ok' || big) return rows;
  const solve = measure(shape.name, 'solve', ['--run', run, '--speedup', '1.5', '--tabu-iterations', '10'], 5400);
  rows.push(solve);
  const id = /solution (\S+)/.exec(solve.tail)?.[1];
  const solutions = join(run, 'solutions');
  const sol = id ?? (existsSync(solutions) ? readdirSync(solutions)[0] : undefined);
  if (sol === undefined) return rows;
  const exported = measure(shape.name, 'export', [join(solutions, sol)], 3600);
  rows.push(exported);
  const child = join(run, 'children', sol);
  rows.push(measure(shape.name, 'evaluate', [child, '--data', TEXT, '--tokens', '2048', '--prompts', '4', '--repeats', '3'], 5400));
  rows.push(measure(shape.name, 'distill', [child, '--data', TEXT, '--tokens', '16384', '--out', join(scratch, `${shape.name}-kd`)], 5400));
  return rows;
}

/** A command's options as a reader wants them: flags and numbers, not the paths. */
function options(args: readonly string[]): string {
  return args.filter((a, k) => a.startsWith('--') ? !args[k + 1]?.includes('/') : !a.includes('/')).join(' ');
}

mkdirSync(scratch, { recursive: true });
const rows = SHAPES.filter((s) => wanted.includes(s.name)).flatMap(benchShape);
const result = { what: 'peak RSS and wall time of each command, each in a fresh process, seeded random bf16 weights with real config.json', machine: { ...machine(), memoryGB: totalmem() / 1e9 }, rows };
writeResult('bench-scale.json', result);
const md = [
  '# bench:scale — memory and time at real model sizes',
  '',
  `${result.machine.cpu}, ${result.machine.cores} cores, ${result.machine.memoryGB.toFixed(0)} GB, ${result.machine.date}. Each command in a fresh process under \`/usr/bin/time -v\`; seeded random bf16 weights with the real config.json of each model. Reproduce: \`npm run bench:scale\`.`,
  '',
  table(['model', 'command', 'peak RSS', 'wall', 'outcome', 'note'], rows.map((r) => [r.shape, `${r.command} ${options(r.args)}`, `${r.peakRssGB.toFixed(2)} GB`, `${r.seconds.toFixed(0)} s`, r.outcome, r.note])),
  '',
];
writeFileAtomic(join(PROJECT_ROOT, 'results/bench-scale.md'), md.join('\n'));
console.log(md.join('\n'));
