import { basename, join } from 'node:path';
import { Command, Option } from 'commander';
import { loadHardwareProfile } from '../hardware/load.js';
import type { BudgetSpec, Metric } from '../search/formulate.js';
import { SOLVERS, solve, type Solution } from '../search/solve.js';
import type { Print } from './commands.js';
import { bytes, int, table } from './format.js';
import { defaultThreads, nonNegativeInt, nonNegativeNumber, positiveInt } from './options.js';
import { DEFAULT_HARDWARE, PROJECT_ROOT } from './paths.js';
import { addLibraryOptions, scoreCommand } from './score-command.js';
import type { ChannelRanking } from '../bld/derive.js';
import { profileCommand } from './hardware-commands.js';
import { existsSync } from 'node:fs';
import { evaluateCommand, exportCommand, reportCommand } from './model-commands.js';
import { fail } from '../util/errors.js';
import { labelVariant } from '../arch/variants/registry.js';

const positiveNumber = (option: string) => (v: string) => {
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n)) fail(`option ${option}: "${v}" is not a positive number`);
  return n;
};

/** The budget and solver flags `solve` and `search` share. */
export function addSolveOptions(c: Command): Command {
  return c
    .option('--hardware <profile>', 'hardware profile JSON', DEFAULT_HARDWARE)
    .option('--speedup <x>', 'each scenario at least x times faster than the parent', positiveNumber('--speedup'))
    .option('--latency-ms <ms>', 'each scenario\'s total time at most this', positiveNumber('--latency-ms'))
    .option('--throughput <tokens/s>', 'generated tokens per second at least this', positiveNumber('--throughput'))
    .option('--scenario <name>', 'apply the time budgets to this scenario only')
    .option('--memory-gb <gb>', 'weights + KV cache at most this (10^9 bytes) in every scenario', positiveNumber('--memory-gb'))
    .option('--fit-memory', 'weights + KV cache within the device\'s memory in every scenario')
    .option('--params <n>', 'at most this many parameters', positiveNumber('--params'))
    .option('--params-ratio <r>', 'at most this fraction of the parent\'s parameters', positiveNumber('--params-ratio'))
    .addOption(new Option('--metric <m>', 'library score the MIP sums').choices(['kl', 'nmse', 'loss']).default('kl'))
    .addOption(new Option('--solver <s>', 'MIP backend').choices(Object.keys(SOLVERS)).default('highs'))
    .option('--time-limit <s>', 'MIP time limit in seconds', positiveNumber('--time-limit'), 60)
    .option('--solutions <k>', 'diverse solutions to find', positiveInt('--solutions'), 1)
    .option('--diversity <d>', 'layers in which each further solution differs from every earlier one', positiveInt('--diversity'), 2)
    .option('--tabu-seconds <s>', 'Tabu search time limit on the true objective (0: no Tabu)', nonNegativeNumber('--tabu-seconds'), 60)
    .option('--tabu-iterations <n>', 'Tabu search iterations at most', positiveInt('--tabu-iterations'), 50)
    .option('--seed <n>', 'seed of Tabu\'s random candidate moves', nonNegativeInt('--seed'), 0);
}

interface SolveFlags {
  hardware: string; speedup?: number; latencyMs?: number; throughput?: number; scenario?: string; memoryGb?: number; fitMemory?: boolean;
  params?: number; paramsRatio?: number; metric: Metric; solver: string; timeLimit: number; solutions: number; diversity: number;
  tabuSeconds: number; tabuIterations: number; seed: number; threads?: number;
}

function budgetOf(f: SolveFlags): BudgetSpec {
  return { speedup: f.speedup, latencyMs: f.latencyMs, throughput: f.throughput, scenario: f.scenario, memoryGb: f.memoryGb, fitMemory: f.fitMemory, params: f.params, paramsRatio: f.paramsRatio };
}

export async function solveCommand(run: string, f: SolveFlags, print: Print): Promise<Solution[]> {
  loadHardwareProfile(f.hardware); // fail on a bad profile before any work
  const solutions = await solve({
    run,
    hardware: f.hardware,
    budget: budgetOf(f),
    metric: f.metric,
    solver: f.solver,
    timeLimitSeconds: f.timeLimit,
    solutions: f.solutions,
    diversity: f.diversity,
    tabuSeconds: f.tabuSeconds,
    tabuIterations: f.tabuIterations,
    threads: f.threads ?? defaultThreads(),
    seed: f.seed,
    onStage: (s) => print(s),
  });
  for (const s of solutions) printSolution(s, print);
  return solutions;
}

function printSolution(s: Solution, print: Print): void {
  const row = (b: Solution['architecture'][number], i: number) => [String(i), labelVariant('attention', b.attention), labelVariant('ffn', b.ffn)];
  print(`\nsolution ${s.id} → ${s.dir}/spec.json`);
  print(table(['layer', 'attention', 'FFN'], s.architecture.map(row)));
  print(`\nparameters ${int(s.params)} of the parent's ${int(s.parentParams)} (${((100 * s.params) / s.parentParams).toFixed(1)}%)`);
  print(table(['scenario', 'predicted ms', 'parent ms', 'speed-up', 'tokens/s', 'memory'], s.predicted.map((c, k) => [
    c.scenario.name,
    (c.totalSeconds * 1e3).toFixed(2),
    (s.parentPredicted[k].totalSeconds * 1e3).toFixed(2),
    `×${(s.parentPredicted[k].totalSeconds / c.totalSeconds).toFixed(2)}`,
    c.tokensPerSecond.toFixed(1),
    bytes(c.memoryBytes),
  ])));
  const t = s.tabu;
  print(`MIP (${s.mip.backend}, ${s.mip.status}${s.mip.gap === 0 ? ', gap 0' : ''}): summed KL ${s.additiveObjective.mip.toFixed(4)}, true KL of its child ${s.mip.choice ? s.evaluated.mipKl.toFixed(4) : '-'}`);
  if (t !== null) print(`Tabu: ${t.iterations} iterations (stopped by ${t.stoppedBy}), ${t.evaluations} children evaluated in ${t.seconds.toFixed(1)} s: true KL ${t.startValue.toFixed(4)} → ${t.bestValue.toFixed(4)}`);
  print(`child: KL ${s.evaluated.kl.toFixed(4)} nats/token from the parent, LM loss ${s.evaluated.lmLoss.toFixed(4)} (parent ${s.evaluated.parentLmLoss.toFixed(4)}) on validation text`);
}

/** `tessera search`: the block library (built or reused) and then `solve`, end to end. */
export async function searchCommand(f: SolveFlags & { model: string; space: string; data: string; out?: string; calibTokens: number; validTokens: number; seqLen: number; workers: number; ranking: ChannelRanking; measure?: boolean }, print: Print): Promise<void> {
  const out = f.out ?? join(PROJECT_ROOT, 'results', `${basename(f.model)}-${basename(f.space, '.json')}`);
  await scoreCommand({ model: f.model, space: f.space, data: f.data, out, calibTokens: f.calibTokens, validTokens: f.validTokens, seqLen: f.seqLen, workers: f.workers, ranking: f.ranking, seed: 0 }, print);
  if (process.exitCode === 130) return;
  if (f.measure) {
    // Price candidates by their real latency here rather than the roofline: small models on CPUs are overhead-bound.
    const measured = join(out, `measured-${basename(f.hardware, '.json')}.json`);
    print('');
    if (!existsSync(measured)) await profileCommand({ model: f.model, space: f.space, hardware: f.hardware, out: measured, threads: f.threads ?? defaultThreads(), repeats: 5 }, print);
    else print(`reusing the measured profile ${measured}`);
    f.hardware = measured;
  }
  const budget = budgetOf(f);
  if (Object.values(budget).every((v) => v === undefined)) f.speedup = 1.5;
  print('');
  const [best] = await solveCommand(out, f, print);
  // The rest of the pipeline on the first solution: the child as a model, measured, and the report.
  print('');
  const child = exportCommand(best.dir, undefined, print, true);
  print('');
  await evaluateCommand(child, { parent: f.model, data: f.data, tokens: 4096, seqLen: f.seqLen, prompts: 16, generateTokens: 32, hardware: f.hardware, repeats: 5, threads: f.threads ?? defaultThreads() }, print);
  print('');
  const report = await reportCommand(out, { hardware: f.hardware, threads: f.threads ?? defaultThreads() }, print);
  print(`\ndone: the report is ${report}`);
}

export function addSearchCommands(p: Command, print: Print): void {
  addSolveOptions(p.command('solve')
    .description('choose one attention and one FFN variant per layer under hardware budgets: MIP, then Tabu search on the true objective')
    .requiredOption('--run <dir>', 'a block library built by `tessera score`'))
    .option('--threads <n>', 'onnxruntime threads', positiveInt('--threads'), defaultThreads())
    .action(async (opts) => void (await solveCommand(opts.run, opts, print)));

  addSolveOptions(addLibraryOptions(p.command('search')
    .description('the whole pipeline: block library (built or reused), solve, export, evaluate, report (default budget: --speedup 1.5)'))
    .option('--out <dir>', 'run directory (default results/<model>-<space>)')
    .option('--measure', 'first measure every candidate sub-block on this machine (tessera profile) and search with those costs'))
    .option('--threads <n>', 'onnxruntime threads', positiveInt('--threads'), defaultThreads())
    .action(async (opts) => searchCommand(opts, print));
}
