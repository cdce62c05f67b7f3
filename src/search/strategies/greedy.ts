import type { ModelConfig } from '../../arch/config.js';
import { sameAttention, sameFfn } from '../../arch/variants/registry.js';
import type { Formulation } from '../formulate.js';
import { violations, type Choice, type ChoiceProblem } from '../problem.js';
import { overBudget, parentChoice, plain } from './choices.js';
import type { SearchStrategy } from './strategy.js';

/**
 * Puzzle's greedy ablation: from the parent, repeatedly take the single sub-block change with the least
 * quality loss (summed library score) per unit of budget saved, until every budget is met.
 */
export function greedyChoice(config: ModelConfig, f: Formulation, p: ChoiceProblem = f.problem): Choice | null {
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

export const greedy: SearchStrategy = {
  name: 'greedy',
  description: 'from the parent, the cheapest change per unit of budget saved until the budgets are met (Puzzle\'s greedy ablation)',
  search: async ({ config, formulation, problem }) => plain(greedyChoice(config, formulation, problem)),
};
