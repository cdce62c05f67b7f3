import { Rng } from '../../util/rng.js';
import type { Formulation } from '../formulate.js';
import { violations, type Choice, type ChoiceProblem } from '../problem.js';
import { overBudget } from './choices.js';
import type { SearchStrategy } from './strategy.js';

/**
 * A random architecture within budget: every layer's block drawn uniformly, then, while a budget is
 * broken, a random layer moved to a random block that brings the choice closer to the budgets.
 */
export function randomFeasible(f: Formulation, rng: Rng, p: ChoiceProblem = f.problem): Choice | null {
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
export async function randomSearch(f: Formulation, samples: number, trueObjective: (c: Choice) => Promise<number>, rng: Rng, p: ChoiceProblem = f.problem): Promise<{ choice: Choice; value: number } | null> {
  let best: { choice: Choice; value: number } | null = null;
  for (let s = 0; s < samples; s++) {
    const c = randomFeasible(f, rng, p);
    if (c === null) continue;
    const value = await trueObjective(c);
    if (best === null || value < best.value) best = { choice: c, value };
  }
  return best;
}

export const random: SearchStrategy = {
  name: 'random',
  description: 'the best of --samples random architectures within the budgets, each evaluated on the true objective',
  search: async ({ formulation, problem, objective, options, index }) => {
    const best = await randomSearch(formulation, options.samples, objective, new Rng(options.seed + index), problem);
    return best === null ? null : { choice: best.choice, record: { samples: options.samples } };
  },
};
