/**
 * Speed you can trust: whether timings repeat, how fast Tessera's inference graphs run, and whether predicted
 * speed-ups are measured. Writes results/bench-speed.{json,md}.
 *
 *   npm run bench:speed [-- --parts graphs,repeat] [--quick]
 *
 * graphs: prefill and decode tokens/s of each shared model and the SmolLM2-135M shape (seeded random weights),
 *   the standard-op graph against the fused-attention graph (onnxruntime's GroupQueryAttention) and, on batch-1
 *   scenarios, llama.cpp on the same parent (float32 GGUF), timed in interleaved rounds with 95% intervals.
 * repeat: ten `tessera evaluate` timings of one child, each a fresh process as a user would run it; every pair
 *   of intervals of the same scenario should overlap.
 * states: where they do not, why: the same child timed twenty times in one process and once in each of twenty fresh
 *   processes, per scenario, every round kept (bench/speed-states.ts).
 * children: the children `tessera solve` picks at ×1.25–×3 on both shared models, priced by a profile measured and
 *   calibrated here, each timed against its parent: predicted against measured speed-ups, with intervals.
 * shape: the same at the SmolLM2-135M shape (seeded random weights, from bench:scale's scratch directory): a profile
 *   measured and calibrated here, and at each budget the architecture of the space a seeded sampler finds nearest
 *   above it (random weights carry no quality for a search to rank by), timed against its parent.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parentArchitecture } from '../src/arch/config.js';
import { loadHardwareProfile } from '../src/hardware/load.js';
import { describeSpeedup, speedupInterval, type SpeedupInterval } from '../src/hardware/interval.js';
import { compareModels, DEFAULT_PROTOCOL, FASTEST_OF_SECONDS, TIMED_RUNS } from '../src/hardware/measure.js';
import { totalSeconds, type Scenario } from '../src/hardware/types.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { score } from '../src/bld/score.js';
import { exportSolution } from '../src/export/export.js';
import { measuredProfile, profileRun, variantCounts } from '../src/hardware/profile.js';
import { parseModelConfig } from '../src/model/config.js';
import { llamaConfigJson, randomWeights, timingWeights } from '../src/model/random.js';
import { cpuRuntime } from '../src/onnx/runtime.js';
import type { Evaluation } from '../src/evaluate/evaluate.js';
import { writeFileAtomic, writeJsonAtomic } from '../src/util/atomic.js';
import { table } from '../src/util/format.js';
import { DEFAULT_HARDWARE, DEFAULT_SPACE, PROJECT_ROOT, SHARED_DIR } from '../src/util/project.js';
import { Rng } from '../src/util/rng.js';
import { machine, partsArg, writeResult } from './support.js';
import { ggufOf, llamaCppModel } from './llama-cpp.js';
import { writeCheckpoint } from '../src/model/save.js';
import type { Architecture } from '../src/arch/variant.js';
import { loadSearchSpace } from '../src/space/expand.js';
import { silent } from '../src/util/reporter.js';
import { randomCheckpoint, SHAPES } from './shapes.js';
import { sampledChildren, SHAPE_DRAWS } from './sampled-children.js';
import { speedRun, tesseraChild } from './speed-runs.js';
import { overlapping as overlappingIntervals, statesMarkdown, timeStates, type StatesPart } from './speed-states.js';
import { readProvenance } from '../src/export/provenance.js';
import { ATTEMPTS, describeAttempts, PAUSE_SECONDS, steadyTiming } from './steady.js';
import { DRIFT_TOLERANCE, parentDrift } from '../src/hardware/drift.js';
import { costModelFor } from '../src/hardware/cost-model.js';
import { architectureCost } from '../src/hardware/model-cost.js';
import type { TimedModel } from '../src/hardware/measure.js';
import type { HardwareProfile } from '../src/hardware/types.js';
import type { ModelConfig } from '../src/arch/config.js';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
};
const quick = process.argv.includes('--quick');
const parts = partsArg(['graphs', 'repeat', 'states', 'children', 'shape']);
const THREADS = machine().cores;
const runtime = cpuRuntime(THREADS);
const previous = existsSync(join(PROJECT_ROOT, 'results/bench-speed.json')) ? JSON.parse(readFileSync(join(PROJECT_ROOT, 'results/bench-speed.json'), 'utf8')) : {};

interface Rates {
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

interface GraphRow {
  model: string;
  scenario: string;
  standard: Rates;
  fused: Rates;
  /** Whole scenario, fused over standard. */
  speedup: SpeedupInterval;
  said: string;
  /** Batch-1 scenarios: llama.cpp on the same parent (float32 GGUF and K/V cache, same threads), and Tessera's fused graph over it. */
  llamaCpp?: Rates & { fusedOverLlamaCpp: SpeedupInterval; said: string };
}

/** Standard against fused graphs of one model, every scenario of the profile, and llama.cpp beside them on batch 1, in interleaved rounds. */
async function graphRows(): Promise<GraphRow[]> {
  const profile = loadHardwareProfile(DEFAULT_HARDWARE);
  const scratch = mkdtempSync(join(tmpdir(), 'tessera-bench-graphs-'));
  try {
    const smolJson = llamaConfigJson({ hidden: 576, layers: 30, heads: 9, kvHeads: 3, intermediate: 1536, vocab: 49152, maxPositions: 8192, ropeTheta: 100000 });
    const smol = parseModelConfig('SmolLM2-135M config', smolJson);
    const smolDir = join(scratch, 'SmolLM2-135M');
    if (!quick) writeCheckpoint(smolDir, smolJson, smol, parentArchitecture(smol), randomWeights(smol, parentArchitecture(smol), new Rng(7)));
    const dirs = [...['stories260K', 'babyllama-tok105-1M'].map((name) => ({ name, dir: join(SHARED_DIR, 'models', name) })), ...(quick ? [] : [{ name: 'SmolLM2-135M shape (random weights)', dir: smolDir }])];
    const rows: GraphRow[] = [];
    for (const { name, dir } of dirs) {
      const c = loadCheckpoint(dir);
      const m = { config: c.config, weights: c.source, arch: c.architecture };
      const gguf = ggufOf(dir, join(scratch, `${basename(dir)}.gguf`));
      const llama = llamaCppModel(gguf, { vocabSize: c.config.vocabSize, threads: THREADS });
      for (const s of profile.workload.scenarios as readonly Scenario[]) {
        process.stderr.write(`graphs: ${name} · ${s.name}\n`);
        const withLlama = s.batch === 1;
        const t = await compareModels([{ ...m, fusedAttention: false }, { ...m, fusedAttention: true }, ...(withLlama ? [llama] : [])], s, { ...DEFAULT_PROTOCOL, runtime, maxSeconds: quick ? 20 : 60 });
        const rate = (k: number): Rates => ({ prefillTokensPerSecond: (s.batch * s.prefillTokens) / t.medians[k].prefillSeconds, decodeTokensPerSecond: (s.batch * (s.generatedTokens - 1)) / t.medians[k].decodeSeconds });
        const total = (k: number) => t.rounds[k].map(totalSeconds);
        const fusedOverLlamaCpp = withLlama ? speedupInterval(total(2), total(1)) : undefined;
        rows.push({
          model: name, scenario: s.name, standard: rate(0), fused: rate(1), speedup: t.speedups[0], said: describeSpeedup(t.speedups[0]),
          ...(fusedOverLlamaCpp !== undefined ? { llamaCpp: { ...rate(2), fusedOverLlamaCpp, said: describeSpeedup(fusedOverLlamaCpp) } } : {}),
        });
      }
    }
    return rows;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

interface RepeatRow {
  run: number;
  /** Which timing of this run (bench/steady.ts), and whether it is the one kept. */
  attempt?: number;
  kept?: boolean;
  scenario: string;
  interval: SpeedupInterval;
  predicted: number;
  /** The parent's measured time over the profile's prediction for it. */
  machineDrift?: number | null;
}

/** One `tessera evaluate` of the child in a fresh CLI process. */
function evaluatedOnce(child: string): Evaluation {
  const out = mkdtempSync(join(tmpdir(), 'tessera-repeat-'));
  try {
    execFileSync('cp', ['-r', child, join(out, 'child')]);
    execFileSync('node', [join(PROJECT_ROOT, 'bin/tessera.js'), 'evaluate', join(out, 'child'), '--prompts', '0', '--tokens', '512', '--timing-seconds', quick ? '10' : '30', '--threads', String(THREADS)], { stdio: ['ignore', 'ignore', 'inherit'] });
    return JSON.parse(readFileSync(join(out, 'child', 'evaluation.json'), 'utf8')) as Evaluation;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** "k of n pairs": pairs of rows of one scenario whose intervals overlap. */
function overlappingPairs(rows: readonly RepeatRow[]): Record<string, string> {
  const overlapping: Record<string, string> = {};
  for (const scenario of [...new Set(rows.map((r) => r.scenario))]) {
    const { overlap, pairs } = overlappingIntervals(rows.filter((r) => r.scenario === scenario).map((r) => r.interval));
    overlapping[scenario] = `${overlap} of ${pairs} pairs`;
  }
  return overlapping;
}

/**
 * Ten evaluations of the same child, each in a fresh CLI process (`tessera evaluate --prompts 0`), each repeated
 * while the machine is off its profiled state (bench/steady.ts). Every attempt is a row; the pairs are counted
 * over the kept ones and, beside them, over all.
 */
async function repeatRows(child: string): Promise<{ rows: RepeatRow[]; overlapping: Record<string, string>; overlappingAll: Record<string, string>; child: string }> {
  const rows: RepeatRow[] = [];
  const runs = quick ? 3 : 10;
  for (let r = 0; r < runs; r++) {
    process.stderr.write(`repeat: evaluation ${r + 1}/${runs}\n`);
    const { attempts } = await steadyTiming(`repeat ${r + 1}`, () => evaluatedOnce(child), (e) => e.latency.map((l) => l.machineDrift));
    for (const [a, { result: e }] of attempts.entries()) {
      for (const l of e.latency) rows.push({ run: r + 1, attempt: a + 1, kept: a === attempts.length - 1, scenario: l.scenario, interval: l.interval, predicted: l.predictedSpeedup, machineDrift: l.machineDrift });
    }
  }
  return { rows, overlapping: overlappingPairs(rows.filter((r) => r.kept)), overlappingAll: overlappingPairs(rows), child };
}

interface ChildRow {
  model: string;
  budget: number;
  child: string;
  dir: string;
  scenario: string;
  predicted: number;
  measured: SpeedupInterval;
  said: string;
  /** |predicted − measured| / measured. */
  error: number;
  /** The parent's measured time over the profile's prediction for it, and every timing attempt's worst (bench/steady.ts). */
  machineDrift?: number | null;
  attempts?: string;
}

/** Parent against child in one scenario, timed again while the machine is off its profiled state (bench/steady.ts). */
async function steadyComparison(what: string, parent: TimedModel & { config: ModelConfig; arch: Architecture }, child: TimedModel, profile: HardwareProfile, k: number, maxSeconds: number) {
  const predictedParent = architectureCost(parent.config, parent.arch, profile, costModelFor(parent.config, profile))[k].totalSeconds;
  const drift = (c: Awaited<ReturnType<typeof compareModels>>) => parentDrift(profile, runtime.spec, totalSeconds(c.medians[0]), predictedParent);
  const timed = await steadyTiming(what, () => compareModels([parent, child], profile.workload.scenarios[k], { ...DEFAULT_PROTOCOL, runtime, maxSeconds }), (c) => [drift(c)]);
  return { measured: timed.result.speedups[0], machineDrift: drift(timed.result), attempts: describeAttempts(timed.attempts) };
}

/** Budgets no architecture of the space reaches under the measured profile. */
const unreachable: string[] = (previous.unreachable ?? []).filter((u: string) => (u.includes(' shape ') ? !parts.has('shape') : !parts.has('children')));

/** Tessera's children at each budget under the calibrated measured profile, each timed against its parent. */
async function childRows(): Promise<ChildRow[]> {
  const rows: ChildRow[] = [];
  for (const model of quick ? ['stories260K'] : ['stories260K', 'babyllama-tok105-1M']) {
    const run = speedRun(model);
    await score(run, { workers: THREADS });
    const hardware = await profileRun(run, DEFAULT_HARDWARE, { runtime, repeats: 5 });
    const profile = loadHardwareProfile(hardware);
    const parent = run.parent();
    for (const budget of quick ? [1.5] : [1.25, 1.5, 2, 3]) {
      const s = await tesseraChild(run, hardware, budget, runtime);
      if (s === null) {
        unreachable.push(`${model} ×${budget} (no architecture of the space reaches it under the measured profile)`);
        continue;
      }
      const dir = exportSolution(run, s.id).dir;
      const child = loadCheckpoint(dir);
      for (const [k, scenario] of profile.workload.scenarios.entries()) {
        process.stderr.write(`children: ${model} · ×${budget} · ${scenario.name}\n`);
        const { measured, machineDrift, attempts } = await steadyComparison(`${model} ×${budget} ${scenario.name}`, { config: parent.config, weights: parent.source, arch: parent.architecture }, { config: child.config, weights: child.source, arch: child.architecture }, profile, k, quick ? 20 : 60);
        const predicted = s.spec.predicted[k].speedup;
        rows.push({ model, budget, child: s.id, dir, scenario: scenario.name, predicted, measured, said: describeSpeedup(measured), error: Math.abs(predicted - measured.estimate) / measured.estimate, machineDrift, attempts });
      }
    }
  }
  return rows;
}

/** How many layers take each variant, e.g. "attn-gqa3 ×12, ffn-swiglu768 ×30, attn-linear ×18". */
const describeCounts = (arch: Architecture): string => Object.entries(variantCounts(arch)).filter(([key]) => key !== 'rest').map(([key, n]) => `${key} ×${n}`).join(', ');

/** Rows of the shape part (the SmolLM2-135M shape's), told from the shared models' by their model's name. */
const isShapeRow = (r: ChildRow) => r.model.endsWith(' shape');

const SHAPE_BUDGETS = [1.25, 1.5, 2, 3];
/** Children of the SmolLM2-135M shape (see the header), each timed against its parent in every scenario. */
async function shapeChildRows(): Promise<ChildRow[]> {
  const shape = SHAPES.find((s) => s.name === 'SmolLM2-135M')!;
  const dir = randomCheckpoint(shape, join(tmpdir(), 'tessera-bench-scale', shape.name));
  const parent = loadCheckpoint(dir);
  const space = loadSearchSpace(DEFAULT_SPACE, parent.config);
  const measured = join(PROJECT_ROOT, 'results/speed', `${shape.name}-shape`, 'measured', 'cpu-local.json');
  if (!existsSync(measured)) {
    const reporter = { ...silent, progress: (what: string) => (done: number, total: number) => process.stderr.write(`shape: ${what} ${done}/${total}\n`) };
    writeJsonAtomic(measured, await measuredProfile({ dir, config: parent.config }, space, DEFAULT_HARDWARE, 'measured-cpu-local', { runtime, repeats: 5, reporter }));
  }
  const profile = loadHardwareProfile(measured);
  const rows: ChildRow[] = [];
  const budgets = quick ? [1.5] : SHAPE_BUDGETS;
  const children = sampledChildren(parent.config, space, profile, budgets);
  for (const b of budgets) if (!children.some((c) => c.budget === b)) unreachable.push(`${shape.name} shape ×${b} (none of ${SHAPE_DRAWS} seeded draws reaches it)`);
  for (const [n, child] of children.entries()) {
    const weights = timingWeights(parent.config, child.arch, new Rng(n));
    for (const [k, scenario] of profile.workload.scenarios.entries()) {
      process.stderr.write(`shape: ×${child.budget} · ${scenario.name}\n`);
      const { measured, machineDrift, attempts } = await steadyComparison(`shape ×${child.budget} ${scenario.name}`, { config: parent.config, weights: parent.source, arch: parent.architecture }, { config: parent.config, weights, arch: child.arch }, profile, k, quick ? 20 : 45);
      const predicted = child.predicted[k];
      rows.push({ model: `${shape.name} shape`, budget: child.budget, child: describeCounts(child.arch), dir: '', scenario: scenario.name, predicted, measured, said: describeSpeedup(measured), error: Math.abs(predicted - measured.estimate) / measured.estimate, machineDrift, attempts });
    }
  }
  return rows;
}

const loadBefore = loadavg()[0];
// Each part's rows are saved as soon as they are measured: a later part's failure does not lose them.
const saved = (more: Record<string, unknown>) => writeResult('bench-speed.json', { ...previous, ...more, machine: machine() });
const graphs = parts.has('graphs') ? await graphRows() : (previous.graphs ?? []);
saved({ graphs });
const previousChildren: ChildRow[] = previous.children ?? [];
const sharedChildren = parts.has('children') ? await childRows() : previousChildren.filter((r) => !isShapeRow(r));
saved({ graphs, children: [...sharedChildren, ...previousChildren.filter(isShapeRow)] });
const shapeChildren = parts.has('shape') ? await shapeChildRows() : previousChildren.filter(isShapeRow);
const children = [...sharedChildren, ...shapeChildren];
saved({ graphs, children });
// The child the repeat and states parts time: --child, else the ×1.5 child of stories260K above.
const child = arg('--child') ?? children.find((r) => r.model === 'stories260K' && r.budget === 1.5)?.dir;
const timingChild = ['repeat', 'states'].filter((p) => parts.has(p));
if (timingChild.length > 0 && child === undefined) throw new Error(`${timingChild.join(', ')}: no child to time (run the children part, or pass --child)`);
const repeat = parts.has('repeat') ? await repeatRows(child!) : (previous.repeat ?? { rows: [], overlapping: {}, child: '' });
saved({ graphs, children, repeat });
const states: StatesPart = parts.has('states') ? timeStates(child!, readProvenance(child!)?.hardware ?? DEFAULT_HARDWARE, quick ? 3 : 20, THREADS) : (previous.states ?? { child: '', runs: 0, timed: [] });
const errors = children.map((r) => r.error).sort((a, b) => a - b);
const medianError = errors.length === 0 ? NaN : errors[Math.floor((errors.length - 1) / 2)];
// A child "below its budget" beyond noise: its whole interval under the speed-up it was solved for.
const belowBudget = children.filter((r) => r.measured.high < r.budget);

const indent = (t: string) => t.split('\n').map((l) => `    ${l}`).join('\n');
const md = [
  '# bench:speed — timings that repeat, and fast graphs', '',
  `This run (parts ${[...parts].join(', ')}; the others are kept from earlier runs, possibly on another machine): ${machine().cpu}, ${THREADS} threads, ${new Date().toISOString()}; load average (1 min) ${loadBefore.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end (other work on the same cores slows both models of a round alike). Command: \`npm run bench:speed\`. Protocol: each round builds every model afresh, warms it up and keeps the fastest of ${TIMED_RUNS} runs (decode step by step; runs of ${FASTEST_OF_SECONDS} s or more once), in alternating order (the speed-up's rounds sample builds as well as runs); rounds go on until the speed-up's 95% interval (the median of the rounds' ratios, the sign test's interval) is within ±${100 * DEFAULT_PROTOCOL.precision}% or the time cap; "within noise" when it holds 1.`, '',
  '## Standard-op graph against fused attention (onnxruntime GroupQueryAttention), and llama.cpp, cpu-local scenarios', '',
  `llama.cpp: node-llama-cpp's prebuilt CPU build, the same parent as float32 GGUF (\`tessera export --format gguf --dtype f32\`), float32 K/V cache, flash attention off, ${THREADS} threads; timed in the same rounds on batch-1 scenarios (node-llama-cpp evaluates one sequence per call).`, '',
  indent(table(['model', 'scenario', 'prefill tok/s standard → fused (llama.cpp)', 'decode tok/s standard → fused (llama.cpp)', 'fused over standard (whole scenario)', 'fused over llama.cpp'], graphs.map((r: GraphRow) => [
    r.model, r.scenario,
    `${r.standard.prefillTokensPerSecond.toFixed(0)} → ${r.fused.prefillTokensPerSecond.toFixed(0)}${r.llamaCpp ? ` (${r.llamaCpp.prefillTokensPerSecond.toFixed(0)})` : ''}`,
    `${r.standard.decodeTokensPerSecond.toFixed(0)} → ${r.fused.decodeTokensPerSecond.toFixed(0)}${r.llamaCpp ? ` (${r.llamaCpp.decodeTokensPerSecond.toFixed(0)})` : ''}`,
    r.said, r.llamaCpp?.said ?? '—',
  ]))), '',
  `## Repeatability: ${new Set(repeat.rows.map((r: RepeatRow) => r.run)).size} evaluations of one child (\`tessera evaluate ${repeat.child.replace(`${PROJECT_ROOT}/`, '')} --prompts 0 --tokens 512\`, each a fresh process)`, '',
  `Each run is timed again (after a ${PAUSE_SECONDS} s pause, at most ${ATTEMPTS} timings) while the parent runs more than ${100 * DRIFT_TOLERANCE}% slower than the profile's prediction for it: this shared machine's slow spells (bench/steady.ts). Every timing is listed; "kept" marks the one that stands.`, '',
  indent(table(['run', 'timing', 'scenario', 'measured speed-up', 'predicted', 'parent vs profile'], repeat.rows.map((r: RepeatRow) => [String(r.run), `${r.attempt ?? 1}${r.kept === false ? '' : ' (kept)'}`, r.scenario, describeSpeedup(r.interval), `×${r.predicted.toFixed(2)}`, r.machineDrift == null ? '—' : `×${r.machineDrift.toFixed(2)}`]))), '',
  ...Object.entries(repeat.overlapping).map(([s, v]) => `- ${s}: intervals of the kept timings overlap in ${v}${repeat.overlappingAll?.[s] !== undefined && repeat.overlappingAll[s] !== v ? `; of every timing, ${repeat.overlappingAll[s]}` : ''}.`), '',
  ...statesMarkdown(states),
  '## Predicted against measured speed-ups (cpu-local measured and calibrated here)', '',
  'The shared models: the mip-tabu children `tessera solve` picks. The SmolLM2-135M shape (seeded random weights, which carry no quality to search on): at each budget the architecture of the puzzle space nearest above it among seeded draws from the parent to the most-cut corner.', '',
  `Each child is timed again (after a ${PAUSE_SECONDS} s pause, at most ${ATTEMPTS} timings) while the parent runs more than ${100 * DRIFT_TOLERANCE}% slower than the profile's prediction for it (bench/steady.ts); "parent vs profile" is the kept timing's, with every timing's in brackets.`, '',
  indent(table(['model', 'budget', 'scenario', 'predicted', 'measured', '|error|', 'parent vs profile'], children.map((r) => [r.model, `×${r.budget}`, r.scenario, `×${r.predicted.toFixed(2)}`, r.said, `${(100 * r.error).toFixed(0)}%`, r.machineDrift == null ? '—' : `×${r.machineDrift.toFixed(2)} (${r.attempts})`]))), '',
  ...(children.length === 0 ? [] : [
    `- Median |predicted − measured| / measured: ${(100 * medianError).toFixed(0)}% (goal ≤ 10%); worst ${(100 * errors[errors.length - 1]).toFixed(0)}% (goal ≤ 25%).`,
    `- Children measured below their budget beyond noise (interval wholly under it): ${belowBudget.length === 0 ? 'none' : belowBudget.map((r) => `${r.model} ×${r.budget} ${r.scenario} (${r.said})`).join('; ')}.`,
  ]),
  ...children.filter((r) => isShapeRow(r) && r.scenario === children.find((c) => c.model === r.model)?.scenario).map((r) => `- ${r.model} ×${r.budget}: ${r.child}.`),
  ...(unreachable.length === 0 ? [] : [`- Budgets without a child: ${unreachable.join('; ')}.`]), '',
];
writeFileAtomic(join(PROJECT_ROOT, 'results/bench-speed.md'), md.join('\n'));
const path = writeResult('bench-speed.json', { what: 'timing repeatability, standard vs fused graphs, predicted vs measured speed-ups of searched children', machine: machine(), graphs, repeat, states, children, medianError, unreachable });
console.log(md.join('\n'));
console.log(`wrote ${path} and results/bench-speed.md`);
