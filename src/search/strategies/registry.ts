import { depth } from './depth.js';
import { greedy } from './greedy.js';
import { mipTabu } from './mip-tabu.js';
import { random } from './random.js';
import type { SearchStrategy } from './strategy.js';
import { uniformKvHeads } from './uniform-kv-heads.js';
import { uniformWidth } from './uniform-width.js';

/** Every strategy `tessera solve --strategy` offers; the first is the default. */
export const STRATEGIES: readonly SearchStrategy[] = [mipTabu, greedy, random, uniformWidth, uniformKvHeads, depth];

export const strategyOf = (name: string) => STRATEGIES.find((s) => s.name === name);
