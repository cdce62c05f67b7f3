import { parentBlock, type ModelConfig } from '../../arch/config.js';
import { sameAttention, sameFfn } from '../../arch/variants/registry.js';
import type { BlockConfig } from '../../arch/variant.js';
import type { Formulation } from '../formulate.js';
import { usageOf, violations, type Choice, type ChoiceProblem } from '../problem.js';

/** Helpers the baseline strategies share: the parent as a choice, and distances to the budgets. */

export const isParentAttention = (config: ModelConfig, b: BlockConfig) => sameAttention(b.attention, parentBlock(config).attention);
export const isParentFfn = (config: ModelConfig, b: BlockConfig) => sameFfn(b.ffn, parentBlock(config).ffn);

/** The parent's own block in every layer. */
export function parentChoice(config: ModelConfig, f: Formulation): number[] {
  return f.blocks.map((bs) => bs.findIndex((b) => isParentAttention(config, b) && isParentFfn(config, b)));
}

/** How far over its budgets a choice is, each budget as a fraction of its limit (0 when feasible). */
export function overBudget(p: ChoiceProblem, c: Choice): number {
  return p.budgets.reduce((s, b, k) => s + Math.max(0, usageOf(p, c, k) - b.limit) / Math.abs(b.limit), 0);
}

/**
 * The most-kept uniform setting that meets the budget: every layer takes the block `pick(level)`,
 * trying levels from the least to the most compressed.
 */
export function uniform(f: Formulation, p: ChoiceProblem, levels: readonly number[], pick: (b: BlockConfig, level: number) => boolean): Choice | null {
  for (const level of levels) {
    const choice = f.blocks.map((bs) => bs.findIndex((b) => pick(b, level)));
    if (choice.every((j) => j >= 0) && violations(p, choice).length === 0) return choice;
  }
  return null;
}

/** A choice as a strategy result with nothing further to record. */
export const plain = (choice: Choice | null) => (choice === null ? null : { choice, record: {} });
