import { existsSync, readFileSync } from 'node:fs';
import { parentArchitecture } from '../arch/config.js';
import { toDeciBlockConfigs } from '../arch/decilm.js';
import { modelParams } from '../arch/params.js';
import { attentionKey, ffnKey } from '../arch/variants/registry.js';
import type { Architecture } from '../arch/variant.js';
import { libraryIdentity } from '../bld/library.js';
import { libraryCandidates } from '../bld/score.js';
import { costModelFor } from '../hardware/cost-model.js';
import { architectureCost } from '../hardware/model-cost.js';
import type { HardwareProfile } from '../hardware/types.js';
import type { Runtime } from '../onnx/runtime.js';
import type { Run } from '../run/run.js';
import { readSpec, writeSpec, SPEC_FORMAT, SPEC_VERSION, type SolveRequest, type Spec } from '../run/spec.js';
import { fail } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import { silent, type Reporter } from '../util/reporter.js';
import { formulate, type BudgetSpec, type Formulation, type Metric } from './formulate.js';
import { highsBackend } from './highs-backend.js';
import { lpSolverBackend } from './lp-solver-backend.js';
import { ChildObjective } from './objective.js';
import { infeasibilityReport, objectiveOf, violations, type Choice } from './problem.js';
import type { SolverBackend } from './solver.js';
import { blockInfluenceOn } from './strategies/depth.js';
import { mipTabu } from './strategies/mip-tabu.js';
import { STRATEGIES, strategyOf } from './strategies/registry.js';
import { DEFAULT_RUNTIME, runtimeTarget } from '../targets/runtimes.js';

export const SOLVERS: Record<string, SolverBackend> = { highs: highsBackend, 'javascript-lp-solver': lpSolverBackend };

export interface SolveOptions {
  /** The hardware profile file that prices candidates. */
  readonly hardware: string;
  readonly budget: BudgetSpec;
  readonly metric: Metric;
  readonly strategy: string;
  /** The MIP backend (strategies that solve a MIP). */
  readonly solver: string;
  readonly timeLimitSeconds: number;
  readonly tabuIterations: number;
  /** An explicit time limit for Tabu search; by default it stops by iterations, so results do not depend on machine load. */
  readonly tabuSeconds?: number;
  readonly samples: number;
  /** How many diverse solutions, each differing from every earlier one in at least `diversity` layers. */
  readonly solutions: number;
  readonly diversity: number;
  readonly seed: number;
  /** The inference runtime the child must run in: only blocks it runs are chosen (default 'onnx': every block). */
  readonly target?: string;
  readonly runtime: Runtime;
  /** Who asks: `tessera solve`/`search` (default), or the report tracing its frontier. */
  readonly origin?: Spec['origin'];
  readonly reporter?: Reporter;
}

/** A solution as the stage hands it over: its spec, and its architecture as objects. */
export interface Solution {
  readonly id: string;
  readonly dir: string;
  readonly spec: Spec;
  readonly architecture: Architecture;
  /** Solved by an earlier call with the same request and read back, not solved again. */
  readonly reused: boolean;
}

/** A budget as a path-safe name, e.g. `speedup1.5` or `params0.7x-fits`. */
export function budgetSlug(b: BudgetSpec): string {
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

/** A solution's id names its budget, strategy, profile, runtime (unless onnx) and rank, so solutions of other requests never share a directory. */
export const solutionId = (budget: BudgetSpec, strategy: string, profile: string, index: number, target = DEFAULT_RUNTIME) =>
  `${budgetSlug(budget)}-${strategy}-${profile}${target === DEFAULT_RUNTIME ? '' : `-${target}`}-${index}`;

function solveRequest(run: Run, profile: HardwareProfile, o: SolveOptions): SolveRequest {
  return {
    profile: { file: profile.file, sha256: sha256(readFileSync(profile.file)) },
    budget: o.budget,
    metric: o.metric,
    strategy: o.strategy,
    solver: o.solver,
    timeLimitSeconds: o.timeLimitSeconds,
    tabuIterations: o.tabuIterations,
    tabuSeconds: o.tabuSeconds ?? null,
    samples: o.samples,
    diversity: o.diversity,
    seed: o.seed,
    library: sha256(JSON.stringify(libraryIdentity(run.manifest))),
    ...(targetOf(o).name === DEFAULT_RUNTIME ? {} : { target: targetOf(o).name }),
  };
}

/** The options a spec's request was solved with, e.g. to trace a frontier the same way. */
export function requestOptions(r: SolveRequest): Omit<SolveOptions, 'budget' | 'solutions' | 'runtime'> {
  return { hardware: r.profile.file, target: r.target, metric: r.metric, strategy: r.strategy, solver: r.solver, timeLimitSeconds: r.timeLimitSeconds, tabuIterations: r.tabuIterations, tabuSeconds: r.tabuSeconds ?? undefined, samples: r.samples, diversity: r.diversity, seed: r.seed };
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** The choice a spec records, in a formulation; null when one of its blocks is not an option there. */
function choiceOfSpec(f: Formulation, spec: Spec): Choice | null {
  const choice = spec.architecture.map((keys, i) => f.blocks[i]?.findIndex((b) => attentionKey(b.attention) === keys.attention && ffnKey(b.ffn) === keys.ffn) ?? -1);
  return choice.length === f.blocks.length && choice.every((j) => j >= 0) ? choice : null;
}

/**
 * The solve stage: chooses one attention and one FFN variant per layer within the budgets, with the chosen
 * strategy, for `solutions` diverse children; writes each one's spec.json. A request solved before (same
 * budget, strategy, options, profile and library) is read back rather than solved again.
 */
const targetOf = (o: Pick<SolveOptions, 'target'>) => runtimeTarget(o.target ?? DEFAULT_RUNTIME);

export async function solve(run: Run, o: SolveOptions): Promise<Solution[]> {
  const reporter = o.reporter ?? silent;
  const strategy = strategyOf(o.strategy) ?? fail(`option --strategy: "${o.strategy}" is not a strategy; expected one of ${STRATEGIES.map((s) => s.name).join(', ')}`);
  const solver = SOLVERS[o.solver] ?? fail(`option --solver: "${o.solver}" is not a solver; expected one of ${Object.keys(SOLVERS).join(', ')}`);
  const profile = run.profile(o.hardware);
  const request = solveRequest(run, profile, o);
  const { config, architecture: parentArch } = run.parentSpec();
  const target = targetOf(o);
  const space = run.space(target);
  const library = run.library();
  const missing = libraryCandidates(space).length - library.completed;
  if (missing > 0) fail(`${run.dir}: the block library is incomplete (${missing} candidates missing); run \`tessera score\` with the same options${target.name === DEFAULT_RUNTIME ? '' : ` and --runtime ${target.name}`} to finish it`);
  const costs = costModelFor(config, profile);
  const f = formulate(config, space, library.scores(), profile, costs, o.budget, o.metric);
  const toArch = (c: Choice): Architecture => c.map((j, i) => f.blocks[i][j]);
  const origin = o.origin ?? 'solve';

  const solutions: Solution[] = [];
  const found: Choice[] = [];
  for (let k = 0; k < o.solutions; k++) {
    const id = solutionId(o.budget, strategy.name, profile.name, k + 1, target.name);
    const path = run.paths.spec(id);
    const earlier = existsSync(path) ? readSpec(path) : null;
    const earlierChoice = earlier !== null && sameJson(earlier.request, request) ? choiceOfSpec(f, earlier) : null;
    if (earlier !== null && earlierChoice !== null) {
      const spec: Spec = earlier.origin === 'frontier' && origin === 'solve' ? { ...earlier, origin } : earlier;
      if (spec !== earlier) writeSpec(path, spec);
      reporter.stage(`solution ${k + 1}: ${id} was solved before for the same request; reused`);
      found.push(earlierChoice);
      solutions.push({ id, dir: run.paths.solution(id), spec, architecture: toArch(earlierChoice), reused: true });
      continue;
    }

    const objective = ChildObjective.of(run, o.runtime);
    const problem = k === 0 ? f.problem : { ...f.problem, distinctFrom: found, minDifference: o.diversity };
    reporter.stage(`solution ${k + 1}: ${strategy.name}${k > 0 ? `, differing from the earlier ones in at least ${o.diversity} layers` : ''}`);
    const result = await strategy.search({
      config,
      formulation: f,
      problem,
      objective: (c) => objective.evaluate(toArch(c)).then((q) => q.kl),
      index: k,
      options: { solver, timeLimitSeconds: o.timeLimitSeconds, tabuIterations: o.tabuIterations, tabuSeconds: o.tabuSeconds, samples: o.samples, seed: o.seed },
      blockInfluence: () => blockInfluenceOn(run.parent(), run.data().calibration, run.manifest.data.seqLen, o.runtime),
    });
    if (result === null || violations(problem, result.choice).length > 0) {
      if (k > 0) {
        reporter.stage(`no further solution differs from the earlier ones in ${o.diversity} layers`);
        break;
      }
      if (strategy === mipTabu) fail(`no architecture in ${space.name} meets the budgets on ${profile.name}:\n${infeasibilityReport(f.problem)}`);
      fail(`${strategy.name} finds no architecture within the budgets on ${profile.name}; --strategy ${mipTabu.name} searches the whole space`);
    }
    found.push(result.choice);
    const architecture = toArch(result.choice);
    const quality = await objective.evaluate(architecture);
    const parentQuality = await objective.evaluate(parentArch);
    const predicted = architectureCost(config, architecture, profile, costs);
    const parentPredicted = architectureCost(config, parentArchitecture(config), profile, costs);
    const ms = (x: number) => x * 1000;
    const spec: Spec = {
      format: SPEC_FORMAT,
      version: SPEC_VERSION,
      id,
      index: k + 1,
      origin,
      run: run.dir,
      request,
      parent: { dir: run.manifest.parent.dir, sourceArchitecture: config.sourceArchitecture, params: modelParams(config, parentArchitecture(config)) },
      space: { file: run.manifest.space.file, name: space.name },
      hardware: { file: profile.file, name: profile.name, device: profile.device.name, costs: costs.source },
      architecture: architecture.map((b) => ({ attention: attentionKey(b.attention), ffn: ffnKey(b.ffn) })),
      block_configs: toDeciBlockConfigs(config, architecture),
      params: modelParams(config, architecture),
      predicted: predicted.map((c, s) => ({
        scenario: c.scenario.name,
        prefillMs: ms(c.prefillSeconds),
        decodeMsPerToken: ms(c.decodeSecondsPerToken),
        totalMs: ms(c.totalSeconds),
        tokensPerSecond: c.tokensPerSecond,
        speedup: parentPredicted[s].totalSeconds / c.totalSeconds,
        weightBytes: c.weightBytes,
        kvCacheBytes: c.kvCacheBytes,
        fitsInMemory: c.fitsInMemory,
      })),
      quality: { metric: o.metric, additive: objectiveOf(f.problem, result.choice), kl: quality.kl, lmLoss: quality.lmLoss, parentLmLoss: parentQuality.lmLoss, on: run.manifest.data.validation },
      search: result.record,
    };
    writeSpec(path, spec);
    solutions.push({ id, dir: run.paths.solution(id), spec, architecture, reused: false });
  }
  return solutions;
}
