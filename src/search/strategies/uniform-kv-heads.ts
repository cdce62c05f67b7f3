import type { SearchStrategy } from './strategy.js';
import { isParentFfn, plain, uniform } from './choices.js';

/** Every attention at the same K/V-head count (mean-pooled), FFNs kept. */
export const uniformKvHeads: SearchStrategy = {
  name: 'uniform-kv-heads',
  description: 'every attention at the same K/V-head count, the most that meets the budgets; FFNs kept',
  search: async ({ config, formulation: f, problem }) => {
    const counts = [...new Set(f.blocks[0].flatMap((b) => (b.attention.kind === 'gqa' ? [b.attention.kvHeads] : [])))].sort((a, b) => b - a);
    return plain(uniform(f, problem, counts, (b, k) => isParentFfn(config, b) && b.attention.kind === 'gqa' && b.attention.kvHeads === k));
  },
};
