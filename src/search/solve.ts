import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { ModelConfig } from '../arch/config.js';
import { parentArchitecture } from '../arch/config.js';
import { toDeciBlockConfigs } from '../arch/decilm.js';
import { modelParams } from '../arch/params.js';
import { attentionKey, ffnKey } from '../arch/variants/registry.js';
import { type Architecture, type BlockConfig } from '../arch/variant.js';
import { distillationData } from '../bld/data.js';
import { BlockLibrary, readLibraryManifest, sha256, type LibraryManifest } from '../bld/library.js';
import { libraryCandidates } from '../bld/run.js';
import { paragraphs, readText } from '../data/text.js';
import { costModelFor, type CostModel } from '../hardware/cost-model.js';
import { loadHardwareProfile } from '../hardware/load.js';
import { architectureCost, type ScenarioCost } from '../hardware/model-cost.js';
import type { HardwareProfile } from '../hardware/types.js';
import { loadCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { loadSearchSpace } from '../space/expand.js';
import type { SearchSpace } from '../space/types.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { fail } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { ChildAssembler } from './child.js';
import { ChildEvaluator, referenceDistribution } from './evaluate.js';
import { formulate, type BudgetSpec, type Metric } from './formulate.js';
import { highsBackend } from './highs-backend.js';
import { lpSolverBackend } from './lp-solver-backend.js';
import { infeasibilityReport, objectiveOf, type Choice, type ChoiceProblem } from './problem.js';
import type { SolveResult, SolverBackend } from './solver.js';
import { tabuSearch, type TabuResult } from './tabu.js';

export const SOLVERS: Record<string, SolverBackend> = { highs: highsBackend, 'javascript-lp-solver': lpSolverBackend };

export interface SolveOptions {
  readonly run: string;
  readonly hardware: string;
  readonly budget: BudgetSpec;
  readonly metric: Metric;
  readonly solver: string;
  readonly timeLimitSeconds: number;
  readonly solutions: number;
  /** Each further solution differs from every earlier one in at least this many layers. */
  readonly diversity: number;
  readonly tabuSeconds: number;
  readonly tabuIterations: number;
  readonly threads: number;
  readonly seed: number;
  readonly onStage?: (line: string) => void;
}

/** Everything a spec.json says about one solution. */
export interface Solution {
  readonly id: string;
  readonly dir: string;
  readonly architecture: Architecture;
  readonly predicted: readonly ScenarioCost[];
  readonly parentPredicted: readonly ScenarioCost[];
  readonly params: number;
  readonly parentParams: number;
  readonly mip: SolveResult;
  /** Summed per-candidate scores of the MIP's choice (what the MIP minimised) and of the final choice. */
  readonly additiveObjective: { readonly mip: number; readonly final: number };
  /** True KL from the parent and LM loss of the assembled child, on the library's validation windows. */
  readonly evaluated: { readonly mipKl: number; readonly kl: number; readonly lmLoss: number; readonly parentLmLoss: number };
  readonly tabu: TabuResult | null;
}

/** The library's inputs, checked against the files as they are now. */
function openRun(run: string): { manifest: LibraryManifest; ck: Checkpoint; space: SearchSpace; library: BlockLibrary } {
  const manifest = readLibraryManifest(run);
  const ck = loadCheckpoint(manifest.parent.dir);
  if (sha256(readFileSync(join(manifest.parent.dir, 'config.json'))) !== manifest.parent.configSha256) {
    fail(`${manifest.parent.dir}/config.json: changed since the library in ${run} was built; rebuild the library`);
  }
  const space = loadSearchSpace(manifest.space.file, ck.config);
  if (sha256(JSON.stringify(space.layers)) !== manifest.space.sha256) fail(`${manifest.space.file}: changed since the library in ${run} was built; rebuild the library`);
  const library = BlockLibrary.open(run, manifest);
  const missing = libraryCandidates(space).length - library.completed;
  if (missing > 0) fail(`${run}: the block library is incomplete (${missing} candidates missing); run \`tessera score\` with the same options to finish it`);
  return { manifest, ck, space, library };
}

function budgetSlug(b: BudgetSpec): string {
  const parts = [
    b.speedup !== undefined && `speedup${b.speedup}`,
    b.latencyMs !== undefined && `latency${b.latencyMs}ms`,
    b.throughput !== undefined && `throughput${b.throughput}`,
    b.scenario !== undefined && b.scenario,
    b.memoryGb !== undefined && `mem${b.memoryGb}GB`,
    b.fitMemory && 'fits',
    b.params !== undefined && `params${b.params}`,
    b.paramsRatio !== undefined && `params${b.paramsRatio}x`,
  ].filter((x): x is string => typeof x === 'string');
  return parts.join('-').replace(/[^\w.-]+/g, '_');
}

/** Solves the MIP (K diverse solutions), refines each with Tabu search on the true objective, writes spec.json files. */
/** A block library opened for searching: its parent, space and scores, priced on a profile, with children evaluable. */
export interface SearchContext {
  readonly manifest: LibraryManifest;
  readonly ck: Checkpoint;
  readonly space: SearchSpace;
  readonly library: BlockLibrary;
  readonly profile: HardwareProfile;
  readonly costs: CostModel;
  readonly evaluator: ChildEvaluator;
  readonly parentEval: { readonly kl: number; readonly lmLoss: number };
}

export async function openSearch(run: string, hardware: string, threads: number, onStage?: (line: string) => void): Promise<SearchContext> {
  const { manifest, ck, space, library } = openRun(run);
  const profile = loadHardwareProfile(hardware);
  const costs = costModelFor(ck.config, profile);
  onStage?.(`validation windows and the parent's distribution (${manifest.data.validation.tokens} tokens of ${manifest.data.validation.file})`);
  const data = distillationData(loadTokenizer(ck.dir), paragraphs(readText(manifest.data.calibration.file)), manifest.data.calibration.file, {
    seqLen: manifest.data.seqLen,
    calibTokens: manifest.data.calibration.tokens,
    validTokens: manifest.data.validation.tokens,
  });
  if (JSON.stringify(data.validation.range) !== JSON.stringify(manifest.data.validation)) fail(`${manifest.data.validation.file}: changed since the library was built; rebuild the library`);
  const reference = await referenceDistribution(ck.config, ck.weights, data.validation, manifest.data.seqLen, threads);
  const assembler = new ChildAssembler(ck.config, ck.weights, library);
  const parentKey = JSON.stringify(ck.architecture);
  const weightsOf = (a: Architecture) => (JSON.stringify(a) === parentKey ? ck.weights : assembler.weights(a));
  const evaluator = new ChildEvaluator(ck.config, data.validation, reference, weightsOf, threads);
  const parentEval = await evaluator.evaluate(ck.architecture);
  return { manifest, ck, space, library, profile, costs, evaluator, parentEval };
}

export async function solve(o: SolveOptions): Promise<Solution[]> {
  const backend = SOLVERS[o.solver] ?? fail(`option --solver: "${o.solver}" is not a solver; expected one of ${Object.keys(SOLVERS).join(', ')}`);
  const { manifest, ck, space, library, profile, costs, evaluator, parentEval } = await openSearch(o.run, o.hardware, o.threads, o.onStage);
  const { problem, blocks } = formulate(ck.config, space, library.scores(), profile, costs, o.budget, o.metric);
  const toArch = (c: Choice): Architecture => c.map((j, i) => blocks[i][j]);

  const solutions: Solution[] = [];
  const found: Choice[] = [];
  for (let k = 0; k < o.solutions; k++) {
    const p = k === 0 ? problem : { ...problem, distinctFrom: found, minDifference: o.diversity };
    const mip = await backend.solve(p, { timeLimitSeconds: o.timeLimitSeconds });
    o.onStage?.(`solution ${k + 1}: ${backend.name} ${mip.status} in ${mip.seconds.toFixed(2)} s${mip.gap !== null ? `, gap ${mip.gap}` : ''}${mip.note ? ` (${mip.note})` : ''}`);
    if (mip.choice === undefined) {
      if (k === 0) {
        if (mip.status === 'infeasible') fail(`no architecture in ${space.name} meets the budgets on ${profile.name}:\n${infeasibilityReport(problem)}`);
        fail(`${backend.name} found no valid solution within ${o.timeLimitSeconds} s${mip.note ? ` (${mip.note})` : ''}; raise --time-limit or try --solver highs`);
      }
      o.onStage?.(`no further solution differs from the earlier ones in ${o.diversity} layers`);
      break;
    }
    found.push(mip.choice);
    const objective = (c: Choice) => evaluator.evaluate(toArch(c)).then((r) => r.kl);
    const mipKl = await objective(mip.choice);
    const tabu = o.tabuSeconds > 0 && o.tabuIterations > 0 ? await refine(p, blocks, mip.choice, objective, ck.config.numLayers, { iterations: o.tabuIterations, seconds: o.tabuSeconds, seed: o.seed + k }) : null;
    const choice = tabu?.best ?? mip.choice;
    const architecture = toArch(choice);
    const final = await evaluator.evaluate(architecture);
    const id = `${budgetSlug(o.budget)}-${k + 1}`;
    const solution: Solution = {
      id,
      dir: join(o.run, 'solutions', id),
      architecture,
      predicted: architectureCost(ck.config, architecture, profile, costs),
      parentPredicted: architectureCost(ck.config, parentArchitecture(ck.config), profile, costs),
      params: modelParams(ck.config, architecture),
      parentParams: modelParams(ck.config, parentArchitecture(ck.config)),
      mip,
      additiveObjective: { mip: objectiveOf(p, mip.choice), final: objectiveOf(p, choice) },
      evaluated: { mipKl, kl: final.kl, lmLoss: final.lmLoss, parentLmLoss: parentEval.lmLoss },
      tabu,
    };
    writeSpec(solution, { manifest, ck, profile, costs, o, space });
    solutions.push(solution);
  }
  return solutions;
}

/** Tessera's Tabu refinement of a MIP choice, with the settings every caller shares. */
export function refine(p: ChoiceProblem, blocks: readonly (readonly BlockConfig[])[], start: Choice, objective: (c: Choice) => Promise<number>, layers: number, o: { iterations: number; seconds: number; seed: number }): Promise<TabuResult> {
  return tabuSearch(p, blocks, start, objective, { maxIterations: o.iterations, maxSeconds: o.seconds, tenure: Math.max(2, Math.round(layers / 4)), candidatesPerIteration: 8, rng: new Rng(o.seed) });
}

function writeSpec(s: Solution, ctx: { manifest: LibraryManifest; ck: Checkpoint; profile: HardwareProfile; costs: CostModel; o: SolveOptions; space: SearchSpace }): void {
  const config: ModelConfig = ctx.ck.config;
  const ms = (x: number) => x * 1000;
  writeJsonAtomic(join(s.dir, 'spec.json'), {
    format: 'tessera-spec',
    version: 1,
    id: s.id,
    parent: { dir: ctx.ck.dir, sourceArchitecture: config.sourceArchitecture, params: s.parentParams },
    library: ctx.o.run,
    space: { file: ctx.space.file, name: ctx.space.name },
    hardware: { file: ctx.profile.file, device: ctx.profile.device.name, costs: ctx.costs.source },
    budget: ctx.o.budget,
    metric: ctx.o.metric,
    architecture: s.architecture.map((b) => ({ attention: attentionKey(b.attention), ffn: ffnKey(b.ffn) })),
    block_configs: toDeciBlockConfigs(config, s.architecture),
    params: s.params,
    predicted: s.predicted.map((c, k) => ({
      scenario: c.scenario.name,
      prefillMs: ms(c.prefillSeconds),
      decodeMsPerToken: ms(c.decodeSecondsPerToken),
      totalMs: ms(c.totalSeconds),
      tokensPerSecond: c.tokensPerSecond,
      speedup: s.parentPredicted[k].totalSeconds / c.totalSeconds,
      weightBytes: c.weightBytes,
      kvCacheBytes: c.kvCacheBytes,
      fitsInMemory: c.fitsInMemory,
    })),
    quality: {
      additive: { metric: ctx.o.metric, mip: s.additiveObjective.mip, final: s.additiveObjective.final },
      evaluated: { on: ctx.manifest.data.validation, klMip: s.evaluated.mipKl, kl: s.evaluated.kl, lmLoss: s.evaluated.lmLoss, parentLmLoss: s.evaluated.parentLmLoss },
    },
    solver: { backend: s.mip.backend, status: s.mip.status, gap: s.mip.gap, seconds: s.mip.seconds, note: s.mip.note ?? null },
    tabu: s.tabu === null ? null : { iterations: s.tabu.iterations, stoppedBy: s.tabu.stoppedBy, evaluations: s.tabu.evaluations, seconds: s.tabu.seconds, klStart: s.tabu.startValue, klBest: s.tabu.bestValue },
  });
}
