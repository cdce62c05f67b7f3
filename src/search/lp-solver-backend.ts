import lpSolverModule from 'javascript-lp-solver';
import { objectiveOf, violations } from './problem.js';
import { choiceFromValues, normalisedBudgets, varName, type SolveResult, type SolverBackend } from './solver.js';

// Its typings describe the ES build as CommonJS; at run time the default import is the solver itself.
const lpSolver = lpSolverModule as unknown as (typeof lpSolverModule)['default'];

/**
 * javascript-lp-solver (the design card's solver): fine for small instances and as a cross-check. It can
 * stop at its timeout with a sub-optimal or even non-integer answer, so nothing it returns is trusted
 * until it is verified, and it never claims optimality after a timeout.
 */
export const lpSolverBackend: SolverBackend = {
  name: 'javascript-lp-solver',
  async solve(p, { timeLimitSeconds }): Promise<SolveResult> {
    const constraints: Record<string, { equal?: number; max?: number }> = {};
    const variables: Record<string, Record<string, number>> = {};
    const binaries: Record<string, 1> = {};
    const budgets = normalisedBudgets(p);
    budgets.forEach((b, k) => (constraints[`budget_${k}`] = { max: b.rhs }));
    (p.distinctFrom ?? []).forEach((_, s) => (constraints[`distinct_${s}`] = { max: p.layers.length - (p.minDifference ?? 1) }));
    p.layers.forEach((l, i) => {
      constraints[`one_${i}`] = { equal: 1 };
      l.options.forEach((o, j) => {
        const v: Record<string, number> = { obj: o.objective, [`one_${i}`]: 1 };
        budgets.forEach((b, k) => (v[`budget_${k}`] = b.coefficient(i, j)));
        (p.distinctFrom ?? []).forEach((c, s) => {
          if (c[i] === j) v[`distinct_${s}`] = 1;
        });
        variables[varName(i, j)] = v;
        binaries[varName(i, j)] = 1;
      });
    });
    const t0 = performance.now();
    const r = lpSolver.Solve({ optimize: 'obj', opType: 'min', constraints, variables, binaries, options: { timeout: timeLimitSeconds * 1000, tolerance: 0 } }) as { feasible: boolean; [name: string]: unknown };
    const seconds = (performance.now() - t0) / 1000;
    const timedOut = seconds >= timeLimitSeconds * 0.98;
    if (!r.feasible) return { backend: this.name, status: timedOut ? 'no-solution' : 'infeasible', gap: null, seconds };
    const choice = choiceFromValues(p, (i, j) => Number(r[varName(i, j)] ?? 0));
    if (choice === null || violations(p, choice).length > 0) {
      return { backend: this.name, status: 'no-solution', gap: null, seconds, note: `returned feasible: true with ${choice === null ? 'a non-integer answer' : `a budget broken (${violations(p, choice)[0]})`}` };
    }
    return { backend: this.name, status: timedOut ? 'feasible' : 'optimal', choice, objective: objectiveOf(p, choice), gap: timedOut ? null : 0, seconds };
  },
};
