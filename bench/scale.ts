/**
 * Real-size models: peak memory (RSS) and wall time of every command at the shapes users bring — SmolLM2-135M,
 * Llama-3.2-1B and Llama-3.1-8B with seeded random bf16 weights and their real config.json — each command in a
 * fresh process under /usr/bin/time -v, as a user would run it. Writes results/bench-scale.{json,md}.
 *
 *   npm run bench:scale [-- --shapes SmolLM2-135M,Llama-3.2-1B] [--parts basic,score,pipeline,evaluate,distill] [--scratch DIR]
 *                         [--score-seconds 900] [--no-perplexity] [--render]
 *
 * Parts: basic (inspect, cost, perplexity), score (the whole library at default settings; at 1B also two workers
 * against one), pipeline (a depth-space library, solve, export, evaluate, distill), distill (the distill row alone,
 * on the child a pipeline part exported before: `distill --tokens 4096` at default settings). Rows not measured in this
 * invocation are kept from results/bench-scale.json (each row is one shape, command and its options); --render
 * measures nothing and writes the tables again.
 *
 * Checkpoints are written once to the scratch directory (default: $TMPDIR/tessera-bench-scale; the 8B one is
 * 16 GB) and reused. Long commands are stopped with SIGINT after a time limit (score is resumable); their rate
 * is measured and the full run's time projected.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parentArchitecture, type ModelConfig } from '../src/arch/config.js';
import { defaultTokens } from '../src/bld/data.js';
import { DEFAULT_PERPLEXITY_SEQ_LEN } from '../src/cli/model-commands.js';
import { parseModelConfig } from '../src/model/config.js';
import { readModelSpec } from '../src/model/checkpoint.js';
import { DEFAULT_STAGE_BYTES } from '../src/onnx/runtime.js';
import { defaultDistillMethod, type DistillMethod } from '../src/distill/distill.js';
import { LORA_DEFAULTS } from '../src/train/lora.js';
import { BASE_BYTES, layerCandidates, distillMemory, evaluateMemory, exportMemory, forwardMemory, scoreMemory } from '../src/run/memory.js';
import { loadSearchSpace } from '../src/space/expand.js';
import { writeFileAtomic } from '../src/util/atomic.js';
import { table } from '../src/util/format.js';
import { PROJECT_ROOT } from '../src/util/project.js';
import { machine, partsArg, writeResult } from './support.js';
import { randomCheckpoint, SHAPES, type ModelShape } from './shapes.js';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const scratch = arg('--scratch') ?? join(tmpdir(), 'tessera-bench-scale');
const wanted = arg('--shapes')?.split(',') ?? SHAPES.map((s) => s.name);
const render = process.argv.includes('--render');
const parts = partsArg(['basic', 'score', 'pipeline', 'evaluate', 'distill'], ['basic', 'score', 'pipeline']);
// --no-perplexity: keep the perplexity rows measured before (they do not depend on what changed since).
const skipPerplexity = process.argv.includes('--no-perplexity');
const RESULT = join(PROJECT_ROOT, 'results/bench-scale.json');
// score is stopped after this long (it is resumable): enough for its peak memory and its rate.
const scoreLimit = Number(arg('--score-seconds') ?? 900);
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
  readonly outcome: 'ok' | 'stopped at the time limit' | 'refused' | 'failed' | 'killed';
  readonly note: string;
  readonly tail: string;
  /** The whole output (not stored): what rows parse. */
  readonly log?: string;
  /** score: candidates per minute once the parent's activations are done. */
  readonly perMinute?: number;
}

/** Runs the CLI under /usr/bin/time -v; SIGINT after `limitSeconds` (the commands stop cleanly on it). */
function measure(shape: string, command: string, args: string[], limitSeconds: number): Measured {
  const started = performance.now();
  const r = spawnSync('/usr/bin/time', ['-v', 'timeout', '-s', 'INT', '-k', '900', String(limitSeconds), 'node', CLI, command, ...args], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const seconds = (performance.now() - started) / 1000;
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1] ?? NaN) * 1024;
  const out = `${r.stdout}\n${r.stderr.split('\tCommand being timed')[0]}`;
  const exit = r.status;
  // timeout exits 124 when it had to send SIGINT; the CLI itself exits 130 when it stopped on it.
  const outcome = exit === 0 ? 'ok' : exit === 124 || exit === 130 ? 'stopped at the time limit' : /needs about [\d.]+ GB of memory/.test(out) ? 'refused' : /signal 9|Killed/.test(r.stderr) ? 'killed' : 'failed';
  const m: Measured = { shape, command, args, peakRssGB: rss / 1e9, seconds, exit, outcome, note: '', tail: out.trim().split('\n').slice(-8).join('\n'), log: out };
  console.log(`${shape} · ${command} ${args.join(' ')}: ${(rss / 1e9).toFixed(2)} GB peak, ${seconds.toFixed(0)} s, ${outcome}`);
  return m;
}

/**
 * Candidates computed and seconds spent on them: from score's closing line when it ran to its end, else from
 * its last progress line (less the candidates it found already done).
 */
function candidateRate(log: string): { done: number; seconds: number } {
  const summary = /(\d+) candidates computed now in ([\d.]+) s/.exec(log) ?? /\((\d+) computed now, \d+ resumed\) · activations [\d.]+ s, candidates ([\d.]+) s/.exec(log);
  if (summary !== null) return { done: Number(summary[1]), seconds: Number(summary[2]) };
  const resumed = Number(/\((\d+) already done\)/.exec(log)?.[1] ?? 0);
  const last = [...log.matchAll(/candidates: (\d+)\/\d+ \(\d+%\) · ([\d.]+) s elapsed/g)].at(-1);
  return last === undefined ? { done: 0, seconds: NaN } : { done: Number(last[1]) - resumed, seconds: Number(last[2]) };
}

/** score into `run` (resuming what is there) stopped after `limit` seconds: peak memory, and candidates per minute. */
function scoreRow(shape: ModelShape, dir: string, run: string, workers: number, extra: string[], limit: number): Measured {
  const s = measure(shape.name, 'score', ['--model', dir, '--space', SPACE, '--data', TEXT, '--out', run, '--workers', String(workers), ...extra], limit);
  const total = Number(/(\d+) candidates of \d+ layers? to build/.exec(s.log ?? '')?.[1] ?? NaN);
  const { done, seconds } = candidateRate(s.log ?? '');
  const perMinute = (60 * done) / seconds;
  // A stopped run's projection assumes its rate so far: an upper bound, since later layers' passes are shorter.
  const rate = `${done} candidates in ${seconds.toFixed(0)} s (${perMinute.toFixed(2)}/min)${s.outcome === 'ok' ? '' : `; all ${total} at most ${(total / perMinute / 60).toFixed(1)} h at that rate`}`;
  const disk = `library ${(diskBytes(join(run, 'library')) / 1e9).toFixed(2)} GB on disk (the checkpoint: ${(diskBytes(dir) / 1e9).toFixed(2)} GB)`;
  return { ...s, perMinute, note: `${rate}; ${disk}` };
}

/** Bytes of the files under a directory. */
function diskBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir, { withFileTypes: true }).reduce((sum, e) => sum + (e.isDirectory() ? diskBytes(join(dir, e.name)) : statSync(join(dir, e.name)).size), 0);
}

function benchShape(shape: ModelShape): Measured[] {
  const dir = randomCheckpoint(shape, join(scratch, shape.name));
  const big = shape.name.includes('8B');
  const rows: Measured[] = [];
  if (parts.has('basic')) {
    rows.push(measure(shape.name, 'inspect', [dir], 600));
    rows.push(measure(shape.name, 'cost', [dir, '--hardware', join(PROJECT_ROOT, 'hardware-profiles/h100-sxm.json')], 600));
    if (!skipPerplexity) rows.push(measure(shape.name, 'perplexity', [dir, '--data', TEXT, '--tokens', '512'], 3600));
    // Default settings (16384 tokens in windows of 2048); beyond 135M, 4096 tokens: the same windows, the same peak, in minutes.
    if (!big && !skipPerplexity) rows.push(measure(shape.name, 'perplexity', [dir, '--data', TEXT, ...(shape.name.includes('135M') ? [] : ['--tokens', '4096'])], 3600));
  }
  if (parts.has('score')) rows.push(...scoreRows(shape, dir));
  if (parts.has('pipeline') && !big) rows.push(...pipelineRows(shape, dir));
  else if (!big) {
    if (parts.has('evaluate')) rows.push(...onExportedChild(shape, (child) => evaluateRow(shape, child)));
    if (parts.has('distill')) rows.push(...onExportedChild(shape, (child) => distillRow(shape, child)));
  }
  return rows;
}

function scoreRows(shape: ModelShape, dir: string): Measured[] {
  const big = shape.name.includes('8B');
  const rows: Measured[] = [];
  // score at default settings (the tokens scale with the parent's size), the whole library, stopped at the limit:
  // peak memory, and the time it took or its rate and projected time. An 8B parent starts with a first part.
  const library = join(scratch, `${shape.name}-run`);
  rmSync(library, { recursive: true, force: true });
  rows.push(scoreRow(shape, dir, library, 2, big ? ['--layers', '30-31'] : [], scoreLimit));
  // At 1B, two workers against one on the same two layers of one library (the second run finds the activations
  // of the first, and scores the candidates again): the rate a second worker buys.
  if (shape.name.includes('1B')) {
    const rate = join(scratch, `${shape.name}-rate`);
    rmSync(rate, { recursive: true, force: true });
    for (const workers of [2, 1]) {
      rmSync(join(rate, 'library/candidates'), { recursive: true, force: true });
      rows.push(scoreRow(shape, dir, rate, workers, ['--layers', '8-9'], scoreLimit));
    }
  }
  return rows;
}

function pipelineRows(shape: ModelShape, dir: string): Measured[] {
  const rows: Measured[] = [];
  // The rest of the pipeline on a library that completes here: the depth space (whole layers kept or dropped)
  // with fewer scoring tokens; what solve, export, evaluate and distill hold does not depend on the space.
  const run = join(scratch, `${shape.name}-depth`);
  rmSync(run, { recursive: true, force: true });
  const [calib, valid] = shape.name.includes('135M') ? ['1024', '512'] : ['512', '256'];
  const lib = measure(shape.name, 'score', ['--model', dir, '--space', join(PROJECT_ROOT, 'search-spaces/depth.json'), '--data', TEXT, '--out', run, '--calib-tokens', calib, '--valid-tokens', valid], 5400);
  rows.push({ ...lib, note: `depth space, ${calib}/${valid} tokens: the library the next rows use` });
  if (lib.outcome !== 'ok') return rows;
  const solve = measure(shape.name, 'solve', ['--run', run, '--params-ratio', '0.8', '--tabu-iterations', shape.name.includes('135M') ? '10' : '2'], 5400);
  rows.push(solve);
  const solutions = join(run, 'solutions');
  const sol = existsSync(solutions) ? readdirSync(solutions)[0] : undefined;
  if (sol === undefined) return rows;
  rows.push(measure(shape.name, 'export', [join(solutions, sol)], 3600));
  const child = join(run, 'children', sol);
  rows.push(evaluateRow(shape, child));
  rows.push(distillRow(shape, child));
  return rows;
}

function evaluateRow(shape: ModelShape, child: string): Measured {
  return measure(shape.name, 'evaluate', [child, '--data', TEXT, '--tokens', shape.name.includes('135M') ? '2048' : '1024', '--prompts', '1', '--repeats', '1'], 5400);
}

function distillRow(shape: ModelShape, child: string): Measured {
  const out = join(scratch, `${shape.name}-kd`);
  rmSync(out, { recursive: true, force: true });
  return measure(shape.name, 'distill', [child, '--data', TEXT, '--tokens', '4096', '--out', out], 5400);
}

/** A row alone (evaluate, distill) on the child an earlier pipeline part exported. */
function onExportedChild(shape: ModelShape, row: (child: string) => Measured): Measured[] {
  const children = join(scratch, `${shape.name}-depth`, 'children');
  const child = existsSync(children) ? readdirSync(children).filter((c) => !c.endsWith('-kd'))[0] : undefined;
  if (child === undefined) {
    console.error(`${shape.name}: no exported child in ${children}; run the pipeline part first`);
    return [];
  }
  return [row(join(children, child))];
}

/** A command's options as a reader wants them: flags and numbers, not the paths. */
function options(args: readonly string[]): string {
  return args.filter((a, k) => a.startsWith('--') ? !args[k + 1]?.includes('/') : !a.includes('/')).join(' ');
}

/** The most candidates a layer of the row's --space has (what a scoring worker holds the streams of). */
function candidatesOf(args: readonly string[], config: ModelConfig): { count: number; bytes: number } {
  return layerCandidates(config, loadSearchSpace(args[args.indexOf('--space') + 1], config));
}

/** The README's memory formula (src/run/memory.ts) for a row, to set beside what was measured. */
function estimateFor(r: Measured): number | undefined {
  const shape = SHAPES.find((x) => x.name === r.shape)!;
  const config = parseModelConfig(`${shape.name} config.json`, shape.configJson);
  const arch = parentArchitecture(config);
  const flag = (name: string, fallback: number) => {
    const k = r.args.indexOf(name);
    return k >= 0 ? Number(r.args[k + 1]) : fallback;
  };
  const stageBytes = DEFAULT_STAGE_BYTES;
  switch (r.command) {
    case 'inspect':
    case 'cost':
      return BASE_BYTES;
    case 'perplexity':
      return forwardMemory(config, arch, { stageBytes, seqLen: Math.min(flag('--tokens', 16384), DEFAULT_PERPLEXITY_SEQ_LEN, config.maxPositions) }).bytes;
    case 'score':
      return scoreMemory(config, arch, { stageBytes, seqLen: 128, workers: flag('--workers', 2), calibTokens: flag('--calib-tokens', defaultTokens(config).calibTokens), validTokens: flag('--valid-tokens', defaultTokens(config).validTokens), candidatesPerLayer: candidatesOf(r.args, config).count, candidateBytes: candidatesOf(r.args, config).bytes }).bytes;
    case 'solve':
      // Tabu search evaluates children on the library's validation tokens, as evaluate does.
      return evaluateMemory(config, arch, { stageBytes, seqLen: 128, tokens: 512, wholeModel: false }).bytes;
    case 'export':
      return exportMemory(config).bytes;
    case 'evaluate':
      return evaluateMemory(config, arch, { stageBytes, seqLen: 128, tokens: flag('--tokens', 4096), wholeModel: true }).bytes;
    case 'distill': {
      const child = r.args[0];
      if (!existsSync(join(child, 'config.json'))) return undefined;
      const childArch = readModelSpec(child).architecture;
      const method = r.args.includes('--method') ? (r.args[r.args.indexOf('--method') + 1] as DistillMethod) : defaultDistillMethod(config, childArch);
      return distillMemory(config, arch, childArch, { seqLen: 128, batch: flag('--batch', 16), method, lora: LORA_DEFAULTS, stageBytes }).bytes;
    }
    default:
      return undefined;
  }
}

mkdirSync(scratch, { recursive: true });
const measured = render ? [] : SHAPES.filter((s) => wanted.includes(s.name)).flatMap(benchShape);
// Rows of shapes measured before (another invocation) are kept; those measured now replace theirs.
const previous: Measured[] = existsSync(RESULT) ? (JSON.parse(readFileSync(RESULT, 'utf8')) as { rows: Measured[] }).rows : [];
const rowKey = (r: Measured) => `${r.shape} ${r.command} ${options(r.args)}`;
const rows = [...previous.filter((r) => !measured.some((m) => rowKey(m) === rowKey(r))), ...measured.map(({ log: _, ...r }) => r)]
  .sort((a, b) => SHAPES.findIndex((s) => s.name === a.shape) - SHAPES.findIndex((s) => s.name === b.shape))
  .map((r) => ({ ...r, estimateGB: (estimateFor(r) ?? NaN) / 1e9 }));
const result = { what: 'peak RSS and wall time of each command, each in a fresh process, seeded random bf16 weights with real config.json; estimateGB: the memory formula of src/run/memory.ts', machine: { ...machine(), memoryGB: totalmem() / 1e9 }, rows };
writeResult('bench-scale.json', result);
const md = [
  '# bench:scale — memory and time at real model sizes',
  '',
  `${result.machine.cpu}, ${result.machine.cores} cores, ${result.machine.memoryGB.toFixed(0)} GB, ${result.machine.date}. Each command in a fresh process under \`/usr/bin/time -v\`; seeded random bf16 weights with the real config.json of each model. "estimate": the formula \`src/run/memory.ts\` states (and the README repeats), which commands check before they start. Reproduce: \`npm run bench:scale\`.`,
  '',
  table(['model', 'command', 'peak RSS', 'estimate', 'wall', 'outcome', 'note'], rows.map((r) => [r.shape, `${r.command} ${options(r.args)}`, `${r.peakRssGB.toFixed(2)} GB`, Number.isNaN(r.estimateGB) ? '—' : `${r.estimateGB.toFixed(2)} GB`, `${r.seconds.toFixed(0)} s`, r.outcome, r.note])),
  '',
];
writeFileAtomic(join(PROJECT_ROOT, 'results/bench-scale.md'), md.join('\n'));
console.log(md.join('\n'));
