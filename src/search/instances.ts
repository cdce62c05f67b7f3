import type { ModelConfig } from '../arch/config.js';
import { attentionKey, ffnKey } from '../arch/variants/registry.js';
import type { CandidateScore } from '../bld/candidate.js';
import type { SearchSpace } from '../space/types.js';
import type { Rng } from '../util/rng.js';
import type { ChoiceProblem } from './problem.js';

/**
 * Seeded synthetic instances for solver tests and benchmarks: a grouped knapsack in which cheaper
 * options lose more quality, as real candidates do, with budgets at `tightness` of the full model's usage.
 */
export function randomChoiceProblem(rng: Rng, layers: number, options: number, budgets: number, tightness: number, integer = false): ChoiceProblem {
  const ls = Array.from({ length: layers }, () => ({
    options: Array.from({ length: options }, (_, j) => ({
      objective: j === 0 ? 0 : j * (0.5 + rng.next()),
      usage: Array.from({ length: budgets }, () => (integer ? 1 + rng.int(20) : 1 + 19 * rng.next()) * (options - j)),
    })),
  }));
  const full = Array.from({ length: budgets }, (_, k) => ls.reduce((s, l) => s + l.options[0].usage[k], 0));
  return { layers: ls, budgets: full.map((f, k) => ({ name: `budget ${k}`, limit: Math.floor(f * tightness), fixed: 0, unit: 'u', scale: 1 })) };
}

/**
 * Seeded library scores for a space, shaped like real ones: KL grows as a sub-block is compressed
 * (fewer KV heads, narrower FFN, linear, no-op), scaled per layer (some layers matter more).
 */
export function syntheticScores(config: ModelConfig, space: SearchSpace, rng: Rng): CandidateScore[] {
  const scores: CandidateScore[] = [];
  space.layers.forEach((l, layer) => {
    const importance = 0.2 + rng.next() * (layer === 0 || layer === space.layers.length - 1 ? 4 : 1);
    const add = (subBlock: 'attention' | 'ffn', key: string, variant: CandidateScore['variant'], loss: number) => {
      const kl = loss === 0 ? 0 : importance * loss * (0.7 + 0.6 * rng.next());
      scores.push({ layer, subBlock, key: `${layer}.${key}`, variant, params: 0, fitted: false, ridge: null, nmseInit: loss, nmse: loss, kl, lmLoss: kl, lmLossDelta: kl });
    };
    for (const v of l.attention) {
      const loss = v.kind === 'gqa' ? 0.02 * Math.log2(config.numKvHeads / v.kvHeads) : v.kind === 'linear' ? 0.08 : 0.12;
      add('attention', attentionKey(v), v, loss);
    }
    for (const v of l.ffn) {
      const loss = v.kind === 'swiglu' ? 0.3 * (1 - v.intermediate / config.intermediateSize) ** 1.5 : v.kind === 'linear' ? 0.25 : 0.35;
      add('ffn', ffnKey(v), v, loss);
    }
  });
  return scores;
}
