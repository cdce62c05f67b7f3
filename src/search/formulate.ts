import type { ModelConfig } from '../arch/config.js';
import { parentArchitecture } from '../arch/config.js';
import { attentionParams, ffnParams, modelParams, nonLayerParams } from '../arch/params.js';
import { attentionKey, ffnKey } from '../arch/variants/registry.js';
import { type BlockConfig } from '../arch/variant.js';
import type { CandidateScore } from '../bld/candidate.js';
import { calibrationError } from '../hardware/calibrate.js';
import type { CostModel } from '../hardware/cost-model.js';
import { architectureCost, attentionMemory, ffnMemory, restMemory } from '../hardware/model-cost.js';
import { totalSeconds, type HardwareProfile, type Scenario } from '../hardware/types.js';
import type { SearchSpace } from '../space/types.js';
import { fail } from '../util/errors.js';
import type { Budget, ChoiceProblem } from './problem.js';

/** Which library score the MIP sums: Puzzle found replace-one-block KL the best guide. */
export type Metric = 'kl' | 'nmse' | 'loss';

/** The user's budgets; any combination. Time budgets apply to `scenario`, or to every scenario of the profile. */
export interface BudgetSpec {
  /** Each scenario's total time at most the parent's divided by this. */
  readonly speedup?: number;
  readonly latencyMs?: number;
  /** Generated tokens per second at least this. */
  readonly throughput?: number;
  readonly scenario?: string;
  /** Weights + KV cache at most this many GB (10⁹ bytes) in every scenario. */
  readonly memoryGb?: number;
  /** Weights + KV cache within the device's memory in every scenario. */
  readonly fitMemory?: boolean;
  readonly params?: number;
  /** Parameters at most this fraction of the parent's. */
  readonly paramsRatio?: number;
}

export interface Formulation {
  readonly problem: ChoiceProblem;
  /** blocks[i][j]: the block of option j in layer i. */
  readonly blocks: readonly (readonly BlockConfig[])[];
}

function metricOf(s: CandidateScore, metric: Metric): number {
  const value = metric === 'kl' ? s.kl : metric === 'nmse' ? s.nmse : s.lmLossDelta;
  if (value === null) fail(`candidate ${s.key} of the block library was scored locally only (score --local-only): solve with --metric nmse, or run tessera score again without --local-only to add its global scores`);
  return value;
}

/** Builds the layer-choice problem: options are the space's blocks, scored from the library and priced by the cost model. */
export function formulate(config: ModelConfig, space: SearchSpace, scores: readonly CandidateScore[], profile: HardwareProfile, costs: CostModel, budget: BudgetSpec, metric: Metric): Formulation {
  const byKey = new Map(scores.map((s) => [s.key, s]));
  const score = (layer: number, key: string) => {
    const s = byKey.get(`${layer}.${key}`);
    if (s === undefined) fail(`the block library has no candidate "${key}" for layer ${layer}; build it with this search space (tessera score)`);
    return metricOf(s, metric);
  };
  const scenarios = timeScenarios(profile, budget);
  const parentCosts = architectureCost(config, parentArchitecture(config), profile, costs);
  const w = profile.workload;
  const budgets: (Budget & { usage: (b: BlockConfig) => number })[] = [];
  for (const s of scenarios) {
    const limits: number[] = [];
    const parentTime = parentCosts.find((c) => c.scenario.name === s.name)!.totalSeconds;
    if (budget.speedup !== undefined) limits.push(parentTime / budget.speedup);
    if (budget.latencyMs !== undefined) limits.push(budget.latencyMs / 1000);
    if (budget.throughput !== undefined) limits.push((s.batch * s.generatedTokens) / budget.throughput);
    if (limits.length === 0) continue;
    const calibration = profile.measured?.calibration?.[s.name];
    const margin = calibration === undefined ? 0 : calibrationError(calibration);
    // A budget on whole-model time is one on the sum of times the MIP adds up (the same, unless a power law relates them).
    const limit = Math.min(...limits) / (1 + margin);
    const sumLimit = costs.sumWithin(limit, s);
    const notes = [
      ...(margin > 0 ? [`priced ${(100 * margin).toFixed(1)}% under the budget: the measured profile's calibration error`] : []),
      ...(Math.abs(sumLimit - limit) > 1e-9 * limit ? [`a whole model of ${(1000 * limit).toFixed(3)} ms is one whose blocks sum to ${(1000 * sumLimit).toFixed(3)} ms`] : []),
    ];
    budgets.push({
      name: `time in scenario "${s.name}"${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`,
      limit: sumLimit,
      fixed: totalSeconds(costs.rest(s)),
      unit: 'ms',
      scale: 1e-3,
      usage: (b) => totalSeconds(costs.attention(b.attention, s)) + totalSeconds(costs.ffn(b.ffn, s)),
    });
  }
  if (budget.memoryGb !== undefined || budget.fitMemory) {
    const limit = Math.min(budget.memoryGb !== undefined ? budget.memoryGb * 1e9 : Infinity, budget.fitMemory ? profile.device.memoryCapacity : Infinity);
    for (const s of w.scenarios) {
      const m = (x: { weights: number; kvCache: number }) => x.weights + x.kvCache;
      budgets.push({ name: `memory in scenario "${s.name}"`, limit, fixed: m(restMemory(config, w)), unit: 'GB', scale: 1e9, usage: (b) => m(attentionMemory(config, b.attention, s, w)) + m(ffnMemory(config, b.ffn, w)) });
    }
  }
  if (budget.params !== undefined || budget.paramsRatio !== undefined) {
    const total = modelParams(config, parentArchitecture(config));
    const limit = Math.min(budget.params ?? Infinity, budget.paramsRatio !== undefined ? budget.paramsRatio * total : Infinity);
    budgets.push({ name: 'parameters', limit, fixed: nonLayerParams(config), unit: 'M params', scale: 1e6, usage: (b) => attentionParams(config, b.attention) + ffnParams(config, b.ffn) });
  }
  if (budgets.length === 0) fail('no budget given: use --speedup, --latency-ms, --throughput, --memory-gb, --fit-memory, --params or --params-ratio');

  const blocks = space.layers.map((l) => l.blocks);
  const problem: ChoiceProblem = {
    layers: blocks.map((options, i) => ({
      options: options.map((b) => ({
        objective: score(i, attentionKey(b.attention)) + score(i, ffnKey(b.ffn)),
        usage: budgets.map((bud) => bud.usage(b)),
      })),
    })),
    budgets: budgets.map(({ usage: _, ...b }) => b),
  };
  return { problem, blocks };
}

function timeScenarios(profile: HardwareProfile, budget: BudgetSpec): readonly Scenario[] {
  const all = profile.workload.scenarios;
  if (budget.scenario === undefined) return all;
  const s = all.find((x) => x.name === budget.scenario);
  if (s === undefined) fail(`option --scenario: "${budget.scenario}" is not a scenario of ${profile.file}; it has ${all.map((x) => `"${x.name}"`).join(', ')}`);
  return [s];
}
