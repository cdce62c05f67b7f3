import type { BlockConfig } from '../../arch/variant.js';
import { fail } from '../../util/errors.js';
import { Rng } from '../../util/rng.js';
import { objectiveOf, type Choice, type ChoiceProblem } from '../problem.js';
import { tabuSearch, type TabuResult } from '../tabu.js';
import type { SearchStrategy } from './strategy.js';

/** Tessera's Tabu refinement of a MIP choice, with the settings every caller shares. */
export function refine(p: ChoiceProblem, blocks: readonly (readonly BlockConfig[])[], start: Choice, objective: (c: Choice) => Promise<number>, o: { iterations: number; seconds?: number; seed: number }): Promise<TabuResult> {
  return tabuSearch(p, blocks, start, objective, { maxIterations: o.iterations, maxSeconds: o.seconds, tenure: Math.max(2, Math.round(blocks.length / 4)), candidatesPerIteration: 8, rng: new Rng(o.seed) });
}

/**
 * Puzzle's search: the MIP over summed library scores (proved optimal), then Tabu search on the true,
 * non-additive objective of whole children from that start.
 */
export const mipTabu: SearchStrategy = {
  name: 'mip-tabu',
  description: 'the MIP over summed library scores, then Tabu search on the true KL of whole children (Puzzle)',
  search: async ({ formulation, problem, objective, options: o, index }) => {
    const mip = await o.solver.solve(problem, { timeLimitSeconds: o.timeLimitSeconds });
    if (mip.choice === undefined) {
      if (mip.status === 'infeasible' || index > 0) return null;
      fail(`${o.solver.name} found no valid solution within ${o.timeLimitSeconds} s${mip.note ? ` (${mip.note})` : ''}; raise --time-limit or try --solver highs`);
    }
    const startKl = await objective(mip.choice);
    const tabu = o.tabuIterations > 0 ? await refine(problem, formulation.blocks, mip.choice, objective, { iterations: o.tabuIterations, seconds: o.tabuSeconds, seed: o.seed + index }) : null;
    return {
      choice: tabu?.best ?? mip.choice,
      record: {
        start: { additive: objectiveOf(problem, mip.choice), kl: startKl },
        solver: { backend: mip.backend, status: mip.status, gap: mip.gap, seconds: mip.seconds, note: mip.note ?? null },
        ...(tabu === null ? {} : { tabu: { iterations: tabu.iterations, stoppedBy: tabu.stoppedBy, evaluations: tabu.evaluations, seconds: tabu.seconds, klStart: tabu.startValue, klBest: tabu.bestValue } }),
      },
    };
  },
};
