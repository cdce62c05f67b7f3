import type { SearchStrategy } from './strategy.js';
import { isParentAttention, plain, uniform } from './choices.js';

/** Minitron-style width pruning: every FFN at the same width (activation-ranked channels), attention kept. */
export const uniformWidth: SearchStrategy = {
  name: 'uniform-width',
  description: 'every FFN at the same width, the widest that meets the budgets (Minitron-style); attention kept',
  search: async ({ config, formulation: f, problem }) => {
    const widths = [...new Set(f.blocks[0].flatMap((b) => (b.ffn.kind === 'swiglu' ? [b.ffn.intermediate] : [])))].sort((a, b) => b - a);
    return plain(uniform(f, problem, widths, (b, w) => isParentAttention(config, b) && b.ffn.kind === 'swiglu' && b.ffn.intermediate === w));
  },
};
