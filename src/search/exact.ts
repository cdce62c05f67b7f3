import { objectiveOf, violations, type Choice, type ChoiceProblem } from './problem.js';

/**
 * Exact references for checking the MIP backends on small instances: brute force over every choice, and
 * dynamic programming over the budget for one constraint with integer usages.
 */

export function bruteForce(p: ChoiceProblem): { choice: Choice; objective: number } | null {
  let best: { choice: Choice; objective: number } | null = null;
  const choice = p.layers.map(() => 0);
  const visit = (i: number): void => {
    if (i === p.layers.length) {
      if (violations(p, choice).length === 0) {
        const objective = objectiveOf(p, choice);
        if (best === null || objective < best.objective) best = { choice: [...choice], objective };
      }
      return;
    }
    for (let j = 0; j < p.layers[i].options.length; j++) {
      choice[i] = j;
      visit(i + 1);
    }
  };
  visit(0);
  return best;
}

/** Multiple-choice knapsack by DP over used capacity; usages of budget 0 must be non-negative integers. */
export function dynamicProgramme(p: ChoiceProblem): { choice: Choice; objective: number } | null {
  if (p.budgets.length !== 1) throw new Error('the DP reference handles exactly one budget');
  const capacity = Math.floor(p.budgets[0].limit - p.budgets[0].fixed);
  if (capacity < 0) return null;
  let best = new Float64Array(capacity + 1).fill(Infinity);
  best[0] = 0;
  const picks: Int32Array[] = [];
  for (const layer of p.layers) {
    const next = new Float64Array(capacity + 1).fill(Infinity);
    const pick = new Int32Array(capacity + 1).fill(-1);
    for (let c = 0; c <= capacity; c++) {
      if (best[c] === Infinity) continue;
      layer.options.forEach((o, j) => {
        const u = o.usage[0];
        if (!Number.isInteger(u) || u < 0) throw new Error('the DP reference needs non-negative integer usages');
        const to = c + u;
        if (to <= capacity && best[c] + o.objective < next[to]) {
          next[to] = best[c] + o.objective;
          pick[to] = j;
        }
      });
    }
    picks.push(pick);
    best = next;
  }
  let end = -1;
  for (let c = 0; c <= capacity; c++) if (best[c] < Infinity && (end < 0 || best[c] < best[end])) end = c;
  if (end < 0) return null;
  const objective = best[end];
  const choice: number[] = [];
  for (let i = p.layers.length - 1; i >= 0; i--) {
    const j = picks[i][end];
    choice.unshift(j);
    end -= p.layers[i].options[j].usage[0];
  }
  return { choice, objective };
}
