import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { DEFAULT_TOKENS } from '../bld/data.js';
import { RIDGE_GRID, type ChannelRanking } from '../bld/derive.js';
import { score, type ScoreOptions, type ScoreResult } from '../bld/score.js';
import { checkpointDirOf, defaultDistillMethod, DEFAULT_LOSS, DISTILL_DEFAULTS, distillChild, distillSolution, FULL_DISTILLATION_MOST_PARAMS, parseLoss, type DistillMethod } from '../distill/distill.js';
import { LORA_DEFAULTS } from '../train/lora.js';
import type { DistillationRecord } from '../export/provenance.js';
import { evaluateChild, timingProfile } from '../evaluate/evaluate.js';
import { deciCaveats, exportSolution } from '../export/export.js';
import { readProvenance } from '../export/provenance.js';
import { ONNX_ATTENTIONS, onnxAttentionOf, type OnnxAttention } from '../export/model-dir.js';
import { profileRun } from '../hardware/profile.js';
import { openCheckpoint, readModelSpec } from '../model/checkpoint.js';
import { FRONTIER_SPEEDUPS, writeReport } from '../report/report.js';
import { childFiles } from '../run/paths.js';
import { Run, type RunInputs } from '../run/run.js';
import { readSpec } from '../run/spec.js';
import type { BudgetSpec, Metric } from '../search/formulate.js';
import { SOLVERS, solve, type SolveOptions } from '../search/solve.js';
import { STRATEGIES } from '../search/strategies/registry.js';
import { fail } from '../util/errors.js';
import { DEFAULT_HARDWARE, DEFAULT_MODEL, DEFAULT_SPACE, DEFAULT_TEXT, PROJECT_ROOT } from '../util/project.js';
import { distillMemory, ensureFits, evaluateMemory, layerCandidates, scoreMemory } from '../run/memory.js';
import { defaultThreads, nonNegativeInt, nonNegativeNumber, positiveInt, positiveNumber, providerOption, runtimeOf, stageOption, threadsOption } from './options.js';
import { DRIFT_TOLERANCE } from '../hardware/drift.js';
import type { ExecutionProvider } from '../onnx/runtime.js';
import { DEFAULT_PROTOCOL } from '../hardware/measure.js';
import { printDistillation, printEvaluation, printScore, printSolution, type Print } from './print.js';
import { cliReporter } from './reporter.js';
import { DEFAULT_RUNTIME, RUNTIMES, runtimeTarget } from '../targets/runtimes.js';
import type { StoredDtype } from '../model/save.js';
import { writeGgufModel } from '../export/gguf/write.js';

/** `--runtime`: the inference runtime a child must run in (targets/runtimes.ts). */
const runtimeOption = (what: string) =>
  new Option('--runtime <name>', `${what}: ${RUNTIMES.map((r) => r.name).join(', ')} (tessera runtimes lists what each runs)`).choices(RUNTIMES.map((r) => r.name)).default(DEFAULT_RUNTIME);

/** The flags that define a run's block library, shared by `score` and `search`. */
function libraryOptions(c: Command): Command {
  return c
    .option('--model <dir>', 'HuggingFace checkpoint directory', DEFAULT_MODEL)
    .option('--space <space.json>', 'search space', DEFAULT_SPACE)
    .option('--data <text>', 'text: calibration from its start, validation from the paragraphs after', DEFAULT_TEXT)
    .option('--calib-tokens <n>', `calibration tokens (default by the parent's size: ${tokenDefaults('calibTokens')})`, positiveInt('--calib-tokens'))
    .option('--valid-tokens <n>', `validation tokens, each candidate's global score (default by the parent's size: ${tokenDefaults('validTokens')})`, positiveInt('--valid-tokens'))
    .option('--seq-len <n>', 'tokens per window', positiveInt('--seq-len'), 128)
    .option('--workers <n>', 'worker threads (one onnxruntime thread each)', positiveInt('--workers'), defaultThreads())
    .addOption(new Option('--ranking <r>', 'FFN channel ranking for narrower widths').choices(['activation', 'magnitude']).default('activation'))
    .option('--seed <n>', 'seed of every random choice (Tabu\'s candidate moves, random search)', nonNegativeInt('--seed'), 0)
    .option('--bld-tokens <n>', 'train each candidate by gradient descent on its local loss for this many tokens after its closed-form fit (0: fits only)', nonNegativeInt('--bld-tokens'), 0)
    .addOption(new Option('--dtype <type>', "how the library stores candidates' weights, and search's children (default: the parent's)").choices(['bf16', 'f16', 'f32']));
}

const storedDtypeOf = (flag: 'bf16' | 'f16' | 'f32' | undefined) => flag?.toUpperCase() as StoredDtype | undefined;

/** "4096 up to 0.5B parameters, 2048 up to 3B, 1024 above". */
const tokenDefaults = (which: 'calibTokens' | 'validTokens') =>
  DEFAULT_TOKENS.map((d) => `${d[which]} ${d.upToParams === Infinity ? 'above' : `up to ${d.upToParams / 1e9}B parameters`}`).join(', ');

interface LibraryFlags {
  model: string; space: string; data: string; calibTokens?: number; validTokens?: number; seqLen: number; workers: number; ranking: ChannelRanking; seed: number; bldTokens: number; dtype?: 'bf16' | 'f16' | 'f32';
}

const runInputs = (f: LibraryFlags): RunInputs => ({ model: f.model, space: f.space, data: f.data, calibTokens: f.calibTokens, validTokens: f.validTokens, seqLen: f.seqLen, ranking: f.ranking, ridgeGrid: RIDGE_GRID, seed: f.seed, bldTokens: f.bldTokens, weightsDtype: storedDtypeOf(f.dtype) });

/** The budget and strategy flags `solve` and `search` share. */
function solveOptions(c: Command): Command {
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
    .addOption(new Option('--strategy <s>', `how to choose the child (${STRATEGIES[0].name}: ${STRATEGIES[0].description}; the others are the baselines users compare with)`).choices(STRATEGIES.map((s) => s.name)).default(STRATEGIES[0].name))
    .addOption(new Option('--metric <m>', 'library score the MIP sums').choices(['kl', 'nmse', 'loss']).default('kl'))
    .addOption(new Option('--solver <s>', 'MIP backend').choices(Object.keys(SOLVERS)).default('highs'))
    .option('--time-limit <s>', 'MIP time limit in seconds', positiveNumber('--time-limit'), 60)
    .option('--solutions <k>', 'diverse solutions to find', positiveInt('--solutions'), 1)
    .option('--diversity <d>', 'layers in which each further solution differs from every earlier one', positiveInt('--diversity'), 2)
    .option('--tabu-iterations <n>', 'Tabu search iterations on the true objective after the MIP (0: none)', nonNegativeInt('--tabu-iterations'), 50)
    .option('--tabu-seconds <s>', 'also stop Tabu search after this many seconds (results then depend on the machine\'s speed)', positiveNumber('--tabu-seconds'))
    .option('--samples <n>', 'architectures random search evaluates', positiveInt('--samples'), 100)
    .addOption(threadsOption()).addOption(stageOption());
}

interface SolveFlags {
  runtime: string; hardware: string; speedup?: number; latencyMs?: number; throughput?: number; scenario?: string; memoryGb?: number; fitMemory?: boolean;
  params?: number; paramsRatio?: number; strategy: string; metric: Metric; solver: string; timeLimit: number; solutions: number; diversity: number;
  tabuIterations: number; tabuSeconds?: number; samples: number; seed: number; threads: number; stageMb: number;
}

const budgetOf = (f: SolveFlags): BudgetSpec => ({ speedup: f.speedup, latencyMs: f.latencyMs, throughput: f.throughput, scenario: f.scenario, memoryGb: f.memoryGb, fitMemory: f.fitMemory, params: f.params, paramsRatio: f.paramsRatio });

function solveOptionsOf(f: SolveFlags, budget: BudgetSpec, print: Print): SolveOptions {
  return {
    hardware: f.hardware,
    budget,
    metric: f.metric,
    strategy: f.strategy,
    solver: f.solver,
    timeLimitSeconds: f.timeLimit,
    tabuIterations: f.tabuIterations,
    tabuSeconds: f.tabuSeconds,
    samples: f.samples,
    solutions: f.solutions,
    diversity: f.diversity,
    seed: f.seed,
    target: f.runtime,
    runtime: runtimeOf(f),
    reporter: cliReporter(print),
  };
}

/** Runs a stage with Ctrl-C asking it to stop cleanly (it keeps what it finished). */
async function interruptibly<T>(stage: (signal: AbortSignal) => Promise<T>, message: string): Promise<T> {
  const abort = new AbortController();
  const onSigint = () => {
    process.stderr.write(`\ninterrupted: ${message}\n`);
    abort.abort();
  };
  process.once('SIGINT', onSigint);
  try {
    return await stage(abort.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** `--layers 3-7` (or `5`): an inclusive range of layer indices. */
function layerRange(value: string): { first: number; last: number } {
  const m = /^(\d+)(?:-(\d+))?$/.exec(value.trim());
  if (m === null) fail(`option --layers: "${value}" is not a layer range like 0-7`);
  const first = Number(m[1]);
  const last = Number(m[2] ?? m[1]);
  if (last < first) fail(`option --layers: "${value}" ends before it starts`);
  return { first, last };
}

async function scoreInterruptibly(run: Run, workers: number, stageMb: number | undefined, print: Print, o: Pick<ScoreOptions, 'layers' | 'localOnly' | 'target'> = {}): Promise<ScoreResult> {
  const runtime = runtimeOf({ threads: workers, stageMb });
  const { config, architecture } = run.parent();
  const { calibration, validation, seqLen } = run.manifest.data;
  const candidates = layerCandidates(config, run.space(o.target));
  ensureFits('score', scoreMemory(config, architecture, { stageBytes: runtime.stageBytes, seqLen, workers, calibTokens: calibration.tokens, validTokens: validation.tokens, candidatesPerLayer: candidates.count, candidateBytes: candidates.bytes }));
  const r = await interruptibly((signal) => score(run, { workers, runtime, ...o, signal, reporter: cliReporter(print) }), 'stopping the running layers at their next candidate or batch (finished candidates are kept); run the same command again to resume');
  printScore(r, run, print);
  return r;
}

/** The exit code of an interrupted stage (128 + SIGINT), as shells expect. */
export const INTERRUPTED = 130;

/** The pipeline's commands: each parses flags, calls its stage, prints; `search` is the list of stages. */
export function addPipelineCommands(p: Command, print: Print, exit: (code: number) => void): void {
  libraryOptions(p.command('score')
    .description('build the block library: every candidate sub-block built from the parent, fitted, and scored (resumable)'))
    .requiredOption('--out <dir>', 'run directory, e.g. results/my-run')
    .addOption(stageOption())
    .option('--layers <first-last>', 'only the candidates of these layers, e.g. 0-7 (run again with other layers to complete the library)', layerRange)
    .option('--local-only', 'a first pass: fit every candidate and score it locally (NMSE) without its pass through the parent\'s later layers (solve --metric nmse works on it; score again without it to add global scores)')
    .addOption(runtimeOption('score only candidates of blocks this runtime runs'))
    .action(async (f: LibraryFlags & { out: string; stageMb: number; layers?: ScoreOptions['layers']; localOnly?: boolean; runtime: string }) => {
      const r = await scoreInterruptibly(Run.create(f.out, runInputs(f)), f.workers, f.stageMb, print, { layers: f.layers, localOnly: f.localOnly, target: runtimeTarget(f.runtime) });
      if (r.status === 'interrupted') exit(INTERRUPTED);
    });

  solveOptions(p.command('solve')
    .description('choose one attention and one FFN variant per layer under hardware budgets (default: MIP, then Tabu search on the true objective)'))
    .requiredOption('--run <dir>', 'a run directory whose block library `tessera score` built')
    .option('--seed <n>', 'seed of every random choice', nonNegativeInt('--seed'), 0)
    .addOption(runtimeOption('choose only blocks this runtime runs'))
    .action(async (f: SolveFlags & { run: string }) => {
      for (const s of await solve(Run.open(f.run), solveOptionsOf(f, budgetOf(f), print))) printSolution(s, print);
    });

  solveOptions(libraryOptions(p.command('search')
    .description('the whole pipeline: block library (built or reused), solve, export, evaluate, report (default budget: --speedup 1.5)')))
    .option('--out <dir>', 'run directory (default results/<model>-<space>)')
    .option('--measure', 'first measure every candidate sub-block on this machine (tessera profile) and search with those costs')
    .option('--distill-tokens <n>', 'distil each chosen child toward the parent for this many tokens (tessera distill) and keep the best after distillation (0: none)', nonNegativeInt('--distill-tokens'), 0)
    .option('--distill-loss <terms>', 'the distillation loss (see tessera distill --loss)', DEFAULT_LOSS)
    .addOption(runtimeOption('score and choose only blocks this runtime runs'))
    .action(async (f: LibraryFlags & SolveFlags & { out?: string; measure?: boolean; distillTokens: number; distillLoss: string }) => {
      const run = Run.create(f.out ?? join(PROJECT_ROOT, 'results', `${basename(f.model)}-${basename(f.space, '.json')}`), runInputs(f));
      const reporter = cliReporter(print);
      const runtime = runtimeOf(f);
      if ((await scoreInterruptibly(run, f.workers, f.stageMb, print, { target: runtimeTarget(f.runtime) })).status === 'interrupted') return exit(INTERRUPTED);
      // Price candidates by their real latency here rather than the roofline: small models on CPUs are overhead-bound.
      const hardware = f.measure ? await profileRun(run, f.hardware, { runtime, repeats: 5, reporter }) : f.hardware;
      const budget = budgetOf(f);
      const solutions = await solve(run, solveOptionsOf({ ...f, hardware }, Object.values(budget).every((v) => v === undefined) ? { speedup: 1.5 } : budget, print));
      for (const s of solutions) printSolution(s, print);
      print('');
      for (const s of solutions) {
        const child = exportSolution(run, s.id, { target: f.runtime, dtype: storedDtypeOf(f.dtype) });
        print(`${child.reused ? 'up to date' : 'exported'}: ${child.dir}`);
      }
      const evaluation = { data: f.data, tokens: 4096, seqLen: f.seqLen, prompts: 16, promptTokens: 8, generateTokens: 32, runtime, reporter };
      let chosen = solutions[0].id;
      if (f.distillTokens > 0) {
        const distilled: { id: string; record: DistillationRecord }[] = [];
        for (const s of solutions) {
          const r = await interruptibly((signal) => distillSolution(run, s.id, { ...DISTILL_DEFAULTS, data: f.data, tokens: f.distillTokens, loss: parseLoss(f.distillLoss), seqLen: f.seqLen, seed: f.seed, runtime, reporter, signal }), 'stopping after this step; run the same command again to resume');
          if (r.status === 'interrupted') return exit(INTERRUPTED);
          printDistillation(r.dir, r.record, print);
          distilled.push({ id: s.id, record: r.record });
        }
        // The ranking can flip after distillation: keep the child that is best after it.
        const best = distilled.reduce((a, b) => (b.record.after.kl < a.record.after.kl ? b : a));
        const bestBefore = distilled.reduce((a, b) => (b.record.before.kl < a.record.before.kl ? b : a));
        if (distilled.length > 1) print(`\nbest after distillation: ${best.id} (KL ${best.record.after.kl.toFixed(4)})${best !== bestBefore ? `; before it, ${bestBefore.id} was best` : ''}`);
        chosen = best.id;
        printEvaluation(await evaluateChild(run.paths.distilled(chosen), run.parent(), { ...evaluation, timing: null }), print);
      }
      // Before and after distillation, on the same text: the part neither saw.
      const alsoUnseenBy = f.distillTokens > 0 ? [run.paths.distilled(chosen)] : [];
      const timing = timingProfile(run.paths.child(chosen));
      print(timing.note);
      printEvaluation(await evaluateChild(run.paths.child(chosen), run.parent(), { ...evaluation, alsoUnseenBy, timing: { ...DEFAULT_PROTOCOL, hardware: timing.path } }), print);
      const report = await writeReport(run, { hardware, speedups: FRONTIER_SPEEDUPS, runtime, reporter });
      print(`\ndone: the report is ${report.html}`);
    });

  p.command('export')
    .description('write a solution as a model directory (DeciLM config.json, model.safetensors, model.onnx, tokenizer), or as one GGUF file for llama.cpp')
    .argument('<dir>', 'results/<run>/solutions/<id> (with --format gguf, also any model directory: an exported or distilled child)')
    .option('--out <path>', 'model directory (default results/<run>/children/<id>), or the .gguf file (default: the model directory + .gguf)')
    .addOption(new Option('--format <format>', 'a HuggingFace model directory, or a GGUF file (llama.cpp, Ollama, LM Studio)').choices(['hf', 'gguf']).default('hf'))
    .addOption(runtimeOption('the runtime the child must run in (default: the one it was solved for; llama.cpp for GGUF)').default(undefined))
    .addOption(new Option('--dtype <type>', "the weights' type (default: the parent's; model.onnx is float32; q8_0 for GGUF only)").choices(['bf16', 'f16', 'f32', 'q8_0']))
    .addOption(new Option('--onnx <graph>', "model.onnx's attention: onnxruntime's fused GroupQueryAttention kernel (default, where the head size is a multiple of 8), or standard ONNX ops (for other ONNX runtimes)").choices([...ONNX_ATTENTIONS]))
    .action((dir: string, f: { out?: string; format: 'hf' | 'gguf'; runtime?: string; dtype?: 'bf16' | 'f16' | 'f32' | 'q8_0'; onnx?: OnnxAttention }) => {
      const dtype = f.dtype?.toUpperCase() as StoredDtype | 'Q8_0' | undefined;
      if (f.format === 'gguf') {
        const solution = existsSync(join(dir, 'spec.json'));
        const modelDir = solution ? exportSolutionReporting(dir, { target: f.runtime ?? 'llama.cpp' }) : dir;
        const model = openCheckpoint(modelDir);
        const out = resolve(f.out ?? `${resolve(modelDir)}.gguf`);
        writeGgufModel(out, model, dtype ?? model.dtype);
        print(`wrote ${out} (llama.cpp's deci architecture, ${dtype ?? model.dtype} weights): llama-cli -m ${out}`);
        return;
      }
      if (dtype === 'Q8_0') fail('option --dtype: q8_0 is a GGUF type; use it with --format gguf');
      exportSolutionReporting(dir, { out: f.out, target: f.runtime, dtype, onnx: f.onnx });
    });

  /** Exports a solution's model directory, says what was written, and returns it. */
  function exportSolutionReporting(dir: string, o: { out?: string; target?: string; dtype?: StoredDtype; onnx?: OnnxAttention }): string {
    const spec = readSpec(join(dir, 'spec.json'));
    const run = Run.open(spec.run);
    const child = exportSolution(run, spec.id, o);
    print(child.reused
      ? `${child.dir} already holds this solution's child`
      : `exported ${child.architecture.length}-layer child to ${child.dir}: config.json (DeciLM block_configs), model.safetensors, model.onnx (+ .data; ${onnxAttentionOf(child.dir)} attention), tokenizer, tessera.json`);
    for (const caveat of deciCaveats(run.config)) print(`note: ${caveat}`);
    return child.dir;
  }

  p.command('evaluate')
    .description('a child against its parent on unseen text (KL, perplexity, greedy agreement) and real latency per scenario')
    .argument('<child-dir>', 'an exported child')
    .option('--parent <dir>', 'the parent checkpoint (default: the one tessera.json names)')
    .option('--data <text>', 'text; the part the search saw is skipped', DEFAULT_TEXT)
    .option('--tokens <n>', 'evaluation tokens', positiveInt('--tokens'), 4096)
    .option('--seq-len <n>', 'tokens per window', positiveInt('--seq-len'), 128)
    .option('--prompts <n>', 'greedy-generation prompts (0: skip)', nonNegativeInt('--prompts'), 16)
    .option('--generate-tokens <n>', 'tokens generated per prompt', positiveInt('--generate-tokens'), 32)
    .option('--hardware <profile>', 'profile whose scenarios are timed here (default: the one searched for if measured on this machine or cpu-local, else cpu-local)')
    .option('--repeats <n>', 'timed rounds per scenario at least (each builds parent and child afresh and keeps the fastest of a few runs of each, in alternating order)', positiveInt('--repeats'), DEFAULT_PROTOCOL.minRounds)
    .option('--precision <x>', 'time more rounds until each speed-up\'s 95% interval is within ± this share of it', positiveNumber('--precision'), DEFAULT_PROTOCOL.precision)
    .option('--timing-seconds <s>', 'timed seconds per scenario after which no further round starts, precise or not', positiveNumber('--timing-seconds'), DEFAULT_PROTOCOL.maxSeconds)
    .option('--retime <n>', `time a scenario up to n times in all while its parent runs more than ${100 * DRIFT_TOLERANCE}% slower than a profile measured here predicts (a busy spell of a shared machine); the last timing stands`, positiveInt('--retime'), 1)
    .option('--retime-pause <s>', 'seconds to wait before timing a scenario again (--retime)', nonNegativeNumber('--retime-pause'), 60)
    .option('--no-timing', 'quality and greedy agreement only (timing builds each whole model in float32)')
    .addOption(threadsOption()).addOption(stageOption()).addOption(providerOption())
    .action(async (dir: string, f: { parent?: string; data: string; tokens: number; seqLen: number; prompts: number; generateTokens: number; hardware?: string; repeats: number; precision: number; timingSeconds: number; retime: number; retimePause: number; timing: boolean; threads: number; stageMb: number; provider: ExecutionProvider }) => {
      const parentDir = f.parent ?? readProvenance(dir)?.parent ?? fail(`${dir}: no tessera.json naming its parent; pass --parent`);
      const parent = openCheckpoint(parentDir);
      ensureFits('evaluate', evaluateMemory(parent.config, parent.architecture, { stageBytes: f.stageMb * 2 ** 20, seqLen: f.seqLen, tokens: f.tokens, wholeModel: f.prompts > 0 || f.timing }));
      const timingRuntime = runtimeOf(f);
      if (f.timing) await timingRuntime.check();
      const timing = f.hardware !== undefined ? { path: f.hardware, note: `timing on this machine${f.provider === 'webgpu' ? "'s GPU (WebGPU)" : ''} with ${f.hardware}` } : timingProfile(dir, f.provider);
      if (f.timing) print(timing.note);
      const e = await evaluateChild(dir, parent, {
        data: f.data, tokens: f.tokens, seqLen: f.seqLen, prompts: f.prompts, promptTokens: 8, generateTokens: f.generateTokens,
        timing: f.timing ? { ...DEFAULT_PROTOCOL, hardware: timing.path, runtime: timingRuntime, minRounds: f.repeats, maxRounds: Math.max(f.repeats, DEFAULT_PROTOCOL.maxRounds), precision: f.precision, maxSeconds: f.timingSeconds, retime: { attempts: f.retime, pauseSeconds: f.retimePause } } : null,
        // Quality on the CPU whatever times: the same numbers wherever a child is evaluated.
        runtime: runtimeOf({ ...f, provider: 'cpu' }), reporter: cliReporter(print),
      });
      printEvaluation(e, print);
      print(`wrote ${childFiles.evaluation(resolve(dir))}`);
    });

  p.command('distill')
    .description('train an exported child back toward its parent (global distillation) on the first 60% of a text; judge it on the last 20%')
    .argument('<child-dir>', 'an exported child')
    .option('--parent <dir>', 'the parent checkpoint (default: the one tessera.json names)')
    .option('--data <text>', 'text', DEFAULT_TEXT)
    .option('--tokens <n>', 'training tokens', positiveInt('--tokens'), 100_000)
    .requiredOption('--out <dir>', 'the distilled child\'s directory (default format: as tessera export writes)')
    .option('--loss <terms>', 'kl, cosine, lm, joined by + with optional =weight', DEFAULT_LOSS)
    .option('--lr <x>', 'peak learning rate (AdamW, warm-up then cosine decay; default 2e-3 × (s / 0.125)², s the median RMS of the child’s linear weights, within 1e-5–2e-3; through adapters 1e-3)', positiveNumber('--lr'))
    .option('--warmup <steps>', 'warm-up steps', nonNegativeInt('--warmup'), DISTILL_DEFAULTS.warmup)
    .option('--batch <n>', 'windows per step', positiveInt('--batch'), DISTILL_DEFAULTS.batch)
    .option('--seq-len <n>', 'tokens per window', positiveInt('--seq-len'), DISTILL_DEFAULTS.seqLen)
    .option('--clip <x>', 'maximum global gradient norm', positiveNumber('--clip'), DISTILL_DEFAULTS.clip)
    .option('--seed <n>', 'seed of the batch order', nonNegativeInt('--seed'), DISTILL_DEFAULTS.seed)
    .option('--checkpoint-every <steps>', 'steps between checkpoints (an interrupted run resumes from the latest)', positiveInt('--checkpoint-every'), DISTILL_DEFAULTS.checkpointEvery)
    .option('--eval-tokens <n>', 'unseen tokens for the before/after comparison (default: 4096 up to 0.5B parameters, 2048 up to 3B, 1024 above)', positiveInt('--eval-tokens'))
    .addOption(new Option('--method <how>', `train every weight (full) or low-rank adapters on the frozen child, merged when written (lora); default: full up to ${FULL_DISTILLATION_MOST_PARAMS / 1e6}M parameters, lora above`).choices(['full', 'lora']))
    .option('--rank <r>', 'adapter rank (--method lora)', positiveInt('--rank'), LORA_DEFAULTS.rank)
    .option('--alpha <x>', 'adapter scale α: an adapter adds (α / rank)·B·A (--method lora)', positiveNumber('--alpha'), LORA_DEFAULTS.alpha)
    .addOption(threadsOption()).addOption(stageOption())
    .action(async (dir: string, f: { parent?: string; data: string; tokens: number; out: string; loss: string; lr?: number; warmup: number; batch: number; seqLen: number; clip: number; seed: number; checkpointEvery: number; evalTokens?: number; method?: DistillMethod; rank: number; alpha: number; threads: number; stageMb: number }) => {
      const parentDir = f.parent ?? readProvenance(dir)?.parent ?? fail(`${dir}: no tessera.json naming its parent; pass --parent`);
      const parent = openCheckpoint(parentDir);
      const child = readModelSpec(dir);
      const method = f.method ?? defaultDistillMethod(child.config, child.architecture);
      const lora = { rank: f.rank, alpha: f.alpha };
      ensureFits('distill', distillMemory(parent.config, parent.architecture, child.architecture, { seqLen: f.seqLen, batch: f.batch, method, lora, stageBytes: f.stageMb * 2 ** 20 }));
      const r = await interruptibly((signal) => distillChild(dir, parent, f.out, {
        data: f.data, tokens: f.tokens, loss: parseLoss(f.loss), lr: f.lr, warmup: f.warmup, batch: f.batch, seqLen: f.seqLen, clip: f.clip, seed: f.seed,
        checkpointEvery: f.checkpointEvery, evalTokens: f.evalTokens, method, lora, runtime: runtimeOf(f), reporter: cliReporter(print), signal,
      }), 'stopping after this step; run the same command again to resume');
      if (r.status === 'interrupted') {
        print(`stopped after step ${r.steps}; the checkpoint is in ${checkpointDirOf(f.out)}`);
        return exit(INTERRUPTED);
      }
      printDistillation(r.dir, r.record, print);
    });

  p.command('report')
    .description('results/<run>/report/report.md and report.html: architectures, frontier, predicted vs measured, commands')
    .requiredOption('--run <dir>', 'a run directory with solutions')
    .option('--hardware <profile>', 'profile for the frontier (default: the solutions\')')
    .addOption(threadsOption()).addOption(stageOption())
    .action(async (f: { run: string; hardware?: string; threads: number; stageMb: number }) => {
      const r = await writeReport(Run.open(f.run), { hardware: f.hardware, speedups: FRONTIER_SPEEDUPS, runtime: runtimeOf(f), reporter: cliReporter(print) });
      print(`report: ${r.html} (and ${r.md})`);
    });
}
