import type { ModelConfig } from '../arch/config.js';
import { removesSubBlock, sameAttention, sameFfn } from '../arch/variants/registry.js';
import { parentBlock } from '../arch/config.js';
import { type Architecture, type BlockConfig } from '../arch/variant.js';
import type { Formulation } from '../search/formulate.js';
import { objectiveOf, usageOf, violations, type Choice, type ChoiceProblem } from '../search/problem.js';
import type { Rng } from '../util/rng.js';

/**
 * The methods users would otherwise pick, each as a choice of one block per layer over the same
 * formulation (space, library scores, costs, budgets) that Tessera's MIP sees. null: the method cannot
 * reach the budget.
 */

const isParentAttention = (config: ModelConfig, b: BlockConfig) => sameAttention(b.attention, parentBlock(config).attention);
const isParentFfn = (config: ModelConfig, b: BlockConfig) => sameFfn(b.ffn, parentBlock(config).ffn);

function parentChoice(config: ModelConfig, f: Formulation): number[] {
  return f.blocks.map((bs) => bs.findIndex((b) => isParentAttention(config, b) && isParentFfn(config, b)));
}

/**
 * The most-kept uniform setting that meets the budget: every layer takes the block `pick(level)`,
 * trying levels from the least to the most compressed.
 */
function uniform(f: Formulation, levels: readonly number[], pick: (b: BlockConfig, level: number) => boolean): Choice | null {
  for (const level of levels) {
    const choice = f.blocks.map((bs) => bs.findIndex((b) => pick(b, level)));
    if (choice.every((j) => j >= 0) && violations(f.problem, choice).length === 0) return choice;
  }
  return null;
}

/** Minitron-style width pruning: every FFN at the same width (activation-ranked channels), attention kept. */
export function uniformWidth(config: ModelConfig, f: Formulation): Choice | null {
  const widths = [...new Set(f.blocks[0].flatMap((b) => (b.ffn.kind === 'swiglu' ? [b.ffn.intermediate] : [])))].sort((a, b) => b - a);
  return uniform(f, widths, (b, w) => isParentAttention(config, b) && b.ffn.kind === 'swiglu' && b.ffn.intermediate === w);
}

/** Every attention at the same K/V-head count (mean-pooled), FFNs kept. */
export function uniformKvHeads(config: ModelConfig, f: Formulation): Choice | null {
  const counts = [...new Set(f.blocks[0].flatMap((b) => (b.attention.kind === 'gqa' ? [b.attention.kvHeads] : [])))].sort((a, b) => b - a);
  return uniform(f, counts, (b, k) => isParentFfn(config, b) && b.attention.kind === 'gqa' && b.attention.kvHeads === k);
}

/**
 * ShortGPT's depth pruning: Block Influence BIᵢ = 1 − mean cos(xᵢ, xᵢ₊₁) of each layer's input and
 * output; drop the least influential whole layers, as many as the budget needs.
 */
export function depthByBlockInfluence(config: ModelConfig, f: Formulation, blockInfluence: readonly number[]): Choice | null {
  const choice = parentChoice(config, f);
  const order = blockInfluence.map((bi, i) => [bi, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (const [, i] of order) {
    if (violations(f.problem, choice).length === 0) return choice;
    const drop = f.blocks[i].findIndex((b) => removesSubBlock('attention', b.attention) && removesSubBlock('ffn', b.ffn));
    if (drop < 0) return null;
    choice[i] = drop;
  }
  return violations(f.problem, choice).length === 0 ? choice : null;
}

/** BIᵢ from the residual stream entering each layer and leaving it, [tokens, hidden] each. */
export function blockInfluence(streams: readonly Float32Array[], hidden: number): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < streams.length; i++) {
    const [a, b] = [streams[i], streams[i + 1]];
    const tokens = a.length / hidden;
    let sum = 0;
    for (let t = 0; t < tokens; t++) {
      let dot = 0;
      let na = 0;
      let nb = 0;
      for (let k = t * hidden; k < (t + 1) * hidden; k++) {
        dot += a[k] * b[k];
        na += a[k] * a[k];
        nb += b[k] * b[k];
      }
      sum += dot / Math.sqrt(na * nb);
    }
    out.push(1 - sum / tokens);
  }
  return out;
}

/** How far over its budgets a choice is, each budget as a fraction of its limit (0 when feasible). */
function overBudget(p: ChoiceProblem, c: Choice): number {
  return p.budgets.reduce((s, b, k) => s + Math.max(0, usageOf(p, c, k) - b.limit) / Math.abs(b.limit), 0);
}

/**
 * Puzzle's greedy ablation: from the parent, repeatedly take the single sub-block change with the least
 * quality loss (summed library KL) per unit of budget saved, until every budget is met.
 */
export function greedy(config: ModelConfig, f: Formulation): Choice | null {
  const p = f.problem;
  const choice = parentChoice(config, f);
  while (violations(p, choice).length > 0) {
    const over = overBudget(p, choice);
    let best: { i: number; j: number; ratio: number } | null = null;
    choice.forEach((cur, i) => {
      f.blocks[i].forEach((b, j) => {
        if (j === cur || !(sameAttention(b.attention, f.blocks[i][cur].attention) || sameFfn(b.ffn, f.blocks[i][cur].ffn))) return;
        const next = [...choice];
        next[i] = j;
        const saved = over - overBudget(p, next);
        if (saved <= 0) return;
        const ratio = (p.layers[i].options[j].objective - p.layers[i].options[cur].objective) / saved;
        if (best === null || ratio < best.ratio) best = { i, j, ratio };
      });
    });
    if (best === null) return null;
    const { i, j } = best as { i: number; j: number };
    choice[i] = j;
  }
  return choice;
}

/**
 * A random architecture within budget: every layer's block drawn uniformly, then, while a budget is
 * broken, a random layer moved to a random block that brings the choice closer to the budgets.
 */
export function randomFeasible(f: Formulation, rng: Rng): Choice | null {
  const p = f.problem;
  const choice = f.blocks.map((bs) => rng.int(bs.length));
  for (let guard = 0; guard < 100 * f.blocks.length && violations(p, choice).length > 0; guard++) {
    const i = rng.int(choice.length);
    const over = overBudget(p, choice);
    const better = f.blocks[i].map((_, j) => j).filter((j) => {
      const next = [...choice];
      next[i] = j;
      return overBudget(p, next) < over;
    });
    if (better.length > 0) choice[i] = better[rng.int(better.length)];
  }
  return violations(p, choice).length === 0 ? choice : null;
}

/** Random search: `samples` random architectures within budget, each evaluated on the true objective; the best kept. */
export async function randomSearch(f: Formulation, samples: number, trueObjective: (c: Choice) => Promise<number>, rng: Rng): Promise<{ choice: Choice; value: number } | null> {
  let best: { choice: Choice; value: number } | null = null;
  for (let s = 0; s < samples; s++) {
    const c = randomFeasible(f, rng);
    if (c === null) continue;
    const value = await trueObjective(c);
    if (best === null || value < best.value) best = { choice: c, value };
  }
  return best;
}

export const architectureOf = (f: Formulation, c: Choice): Architecture => c.map((j, i) => f.blocks[i][j]);
export const additive = (f: Formulation, c: Choice) => objectiveOf(f.problem, c);
