import { describe, expect, it } from 'vitest';
import type { BlockConfig } from '../src/arch/variant.js';
import { blockInfluence, depthChoice } from '../src/search/strategies/depth.js';
import { greedyChoice } from '../src/search/strategies/greedy.js';
import { randomFeasible, randomSearch } from '../src/search/strategies/random.js';
import type { SearchStrategy } from '../src/search/strategies/strategy.js';
import { uniformKvHeads } from '../src/search/strategies/uniform-kv-heads.js';
import { uniformWidth } from '../src/search/strategies/uniform-width.js';
import { highsBackend } from '../src/search/highs-backend.js';
import type { Formulation } from '../src/search/formulate.js';
import { violations } from '../src/search/problem.js';
import { Rng } from '../src/util/rng.js';
import { configOf } from './support/fixtures.js';

// Parent: 4 KV heads, FFN 8. Each layer offers every (attention, FFN) pair below; usage = attention + FFN cost.
const config = configOf({ hidden: 8, layers: 4, heads: 4, kvHeads: 4, headDim: 2, intermediate: 8, vocab: 5 });
const attention = [{ kind: 'gqa', kvHeads: 4 }, { kind: 'gqa', kvHeads: 2 }, { kind: 'noop' }] as const;
const ffn = [{ kind: 'swiglu', intermediate: 8 }, { kind: 'swiglu', intermediate: 4 }, { kind: 'noop' }] as const;
const attentionCost = [4, 3, 0];
const ffnCost = [6, 3, 0];
const attentionLoss = [0, 0.1, 1];
const ffnLoss = [0, 0.3, 2];

function formulation(limit: number, layerWeight = [1, 1, 1, 1]): Formulation {
  const blocks: BlockConfig[] = [];
  attention.forEach((a) => ffn.forEach((f) => blocks.push({ attention: a, ffn: f })));
  return {
    blocks: layerWeight.map(() => blocks),
    problem: {
      layers: layerWeight.map((w) => ({
        options: attention.flatMap((_, i) => ffn.map((__, j) => ({ objective: w * (attentionLoss[i] + ffnLoss[j]), usage: [attentionCost[i] + ffnCost[j]] }))),
      })),
      budgets: [{ name: 'time', limit, fixed: 0, unit: 's', scale: 1 }],
    },
  };
}
const full = 4 * 10;

/** A strategy's choice on a formulation, with nothing else in play. */
async function choose(s: SearchStrategy, f: Formulation) {
  const options = { solver: highsBackend, timeLimitSeconds: 10, tabuIterations: 0, samples: 1, seed: 0 };
  return (await s.search({ config, formulation: f, problem: f.problem, objective: async () => 0, index: 0, options, blockInfluence: async () => [] }))?.choice ?? null;
}

describe('baseline strategies', () => {
  it('Block Influence is 1 − mean cosine of a layer\'s input and output', () => {
    const a = Float32Array.of(1, 0, 0, 1);
    expect(blockInfluence([a, a], 2)[0]).toBeCloseTo(0, 12);
    expect(blockInfluence([a, Float32Array.of(0, 1, 1, 0)], 2)[0]).toBeCloseTo(1, 12);
    expect(blockInfluence([a, Float32Array.of(-1, 0, 0, -1)], 2)[0]).toBeCloseTo(2, 12);
  });

  it('uniform width keeps attention and gives every FFN the widest width that fits', async () => {
    const f = formulation(full - 4 * 3);
    const c = (await choose(uniformWidth, f))!;
    expect(c.map((j) => f.blocks[0][j])).toEqual(Array(4).fill({ attention: attention[0], ffn: ffn[1] }));
    expect(await choose(uniformWidth, formulation(10))).toBeNull();
  });

  it('uniform KV heads keeps FFNs and gives every attention the most heads that fit', async () => {
    const f = formulation(full - 4);
    expect((await choose(uniformKvHeads, f))!.map((j) => f.blocks[0][j])).toEqual(Array(4).fill({ attention: attention[1], ffn: ffn[0] }));
  });

  it('depth pruning drops the least influential whole layers until the budget is met', () => {
    const f = formulation(full - 20);
    const c = depthChoice(config, f, [0.5, 0.1, 0.9, 0.2])!;
    expect(c.map((j) => f.blocks[0][j].attention.kind)).toEqual(['gqa', 'noop', 'gqa', 'noop']);
  });

  it('greedy takes the least loss per saved cost and ends within budget', () => {
    const f = formulation(full - 1, [1, 5, 5, 5]);
    const c = greedyChoice(config, f)!;
    expect(violations(f.problem, c)).toEqual([]);
    // Saving one unit is cheapest through layer 0's attention (loss 0.1 for 1 unit; the others weigh 5×).
    expect(f.blocks[0][c[0]]).toEqual({ attention: attention[1], ffn: ffn[0] });
    expect(c.slice(1).every((j) => f.blocks[0][j].attention.kind === 'gqa' && (f.blocks[0][j].attention as { kvHeads: number }).kvHeads === 4)).toBe(true);
  });

  it('random architectures always meet the budget; random search keeps the best of its samples', async () => {
    const f = formulation(16);
    const rng = new Rng(3);
    for (let k = 0; k < 50; k++) expect(violations(f.problem, randomFeasible(f, rng)!)).toEqual([]);
    const values: number[] = [];
    const best = await randomSearch(f, 20, async (c) => {
      const v = c.reduce((s, j, i) => s + f.problem.layers[i].options[j].objective, 0);
      values.push(v);
      return v;
    }, new Rng(4));
    expect(values).toHaveLength(20);
    expect(best!.value).toBe(Math.min(...values));
  });
});

describe('warnings on a child before it is exported', () => {
  it('says when a child keeps no attention or no FFN anywhere, or lost most of its quality', async () => {
    const { solutionWarnings } = await import('../src/cli/print.js');
    const gqa = { kind: 'gqa', kvHeads: 4 } as const;
    const swiglu = { kind: 'swiglu', width: 64 } as const;
    const noop = { kind: 'noop' } as const;
    const quality = (lmLoss: number) => ({ spec: { quality: { lmLoss, parentLmLoss: 1 } } }) as never;
    const of = (arch: { attention: unknown; ffn: unknown }[], lmLoss = 1.1) => solutionWarnings({ architecture: arch as never, ...(quality(lmLoss) as object) } as never);
    expect(of([{ attention: gqa, ffn: swiglu }, { attention: noop, ffn: noop }])).toEqual([]);
    expect(of([{ attention: noop, ffn: swiglu }, { attention: noop, ffn: noop }])).toEqual([expect.stringContaining('keeps no attention in any layer')]);
    expect(of([{ attention: noop, ffn: noop }])).toHaveLength(2);
    expect(of([{ attention: gqa, ffn: swiglu }], 1 + Math.log(500000))).toEqual([expect.stringContaining('perplexity is 500000× its parent')]);
  });
});
