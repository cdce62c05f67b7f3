import type { Choice, ChoiceProblem } from './problem.js';

export type SolveStatus =
  /** Proved optimal (MIP gap 0 within tolerance). */
  | 'optimal'
  /** A valid solution, not proved optimal (time limit). */
  | 'feasible'
  | 'infeasible'
  /** Stopped by the time limit with no valid solution. */
  | 'no-solution';

export interface SolveResult {
  readonly backend: string;
  readonly status: SolveStatus;
  readonly choice?: Choice;
  readonly objective?: number;
  /** Relative MIP gap when the backend reports one; 0 when proved optimal. */
  readonly gap: number | null;
  readonly seconds: number;
  /** What the backend said when its answer could not be used. */
  readonly note?: string;
}

/** A mixed-integer solver for the layer-choice problem (Optuna's "sampler" seat: one file per backend). */
export interface SolverBackend {
  readonly name: string;
  solve(problem: ChoiceProblem, opts: { timeLimitSeconds: number }): Promise<SolveResult>;
}

/** Variable name of layer i's option j. */
export const varName = (i: number, j: number) => `x_${i}_${j}`;

/**
 * Each budget row divided by its right-hand side, so that rows of seconds and of bytes reach the solver
 * at the same scale (solver tolerances are absolute).
 */
export function normalisedBudgets(p: ChoiceProblem): { rhs: number; coefficient: (i: number, j: number) => number }[] {
  return p.budgets.map((b, k) => {
    const rhs = b.limit - b.fixed;
    const scale = Math.abs(rhs) > 0 ? Math.abs(rhs) : 1;
    return { rhs: rhs / scale, coefficient: (i: number, j: number) => p.layers[i].options[j].usage[k] / scale };
  });
}

/** The option picked in each layer from 0/1 variable values, or null when the values are not a clean choice. */
export function choiceFromValues(p: ChoiceProblem, value: (i: number, j: number) => number): Choice | null {
  const choice: number[] = [];
  for (let i = 0; i < p.layers.length; i++) {
    const picked = p.layers[i].options.map((_, j) => j).filter((j) => value(i, j) > 0.5);
    const fractional = p.layers[i].options.some((_, j) => Math.abs(value(i, j) - Math.round(value(i, j))) > 1e-6);
    if (picked.length !== 1 || fractional) return null;
    choice.push(picked[0]);
  }
  return choice;
}
