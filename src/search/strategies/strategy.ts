import type { ModelConfig } from '../../arch/config.js';
import type { Formulation } from '../formulate.js';
import type { Choice, ChoiceProblem } from '../problem.js';
import type { SolverBackend } from '../solver.js';

/** What every strategy may use: the formulation, the true objective, and the run's options. */
export interface StrategyContext {
  readonly config: ModelConfig;
  readonly formulation: Formulation;
  /** The formulation's problem, with the earlier solutions this one must differ from (Puzzle's diversity constraint). */
  readonly problem: ChoiceProblem;
  /** The true objective of a choice: the assembled child's KL from the parent on validation text. */
  readonly objective: (c: Choice) => Promise<number>;
  /** Which of the diverse solutions this is (0 for the first); strategies seed their randomness with it. */
  readonly index: number;
  readonly options: StrategyOptions;
  /** Each layer's Block Influence on calibration text (ShortGPT), computed on first use. */
  blockInfluence(): Promise<readonly number[]>;
}

export interface StrategyOptions {
  /** The MIP backend, and its time limit. */
  readonly solver: SolverBackend;
  readonly timeLimitSeconds: number;
  /** Tabu search on the true objective after the MIP: iterations (0: none), and an optional time limit. */
  readonly tabuIterations: number;
  readonly tabuSeconds?: number;
  /** Architectures random search draws and evaluates. */
  readonly samples: number;
  readonly seed: number;
}

/** How a strategy reached its choice, as spec.json records it. */
export interface SearchRecord {
  /** What it refined (the MIP's choice): its summed library score and its true KL. */
  readonly start?: { readonly additive: number; readonly kl: number };
  readonly solver?: { readonly backend: string; readonly status: string; readonly gap: number | null; readonly seconds: number; readonly note: string | null };
  readonly tabu?: { readonly iterations: number; readonly stoppedBy: string; readonly evaluations: number; readonly seconds: number; readonly klStart: number; readonly klBest: number };
  /** Architectures drawn and evaluated (random search). */
  readonly samples?: number;
}

export interface StrategyResult {
  readonly choice: Choice;
  readonly record: SearchRecord;
}

/**
 * A way to choose one block per layer within the budgets (Optuna's "sampler" seat): the MIP with Tabu
 * refinement, or the methods users would otherwise pick. null: the strategy cannot reach the budgets (or
 * find a further solution distinct from the earlier ones).
 */
export interface SearchStrategy {
  readonly name: string;
  readonly description: string;
  search(ctx: StrategyContext): Promise<StrategyResult | null>;
}
