import type { ModelConfig } from '../../arch/config.js';
import { removesSubBlock } from '../../arch/variants/registry.js';
import type { WindowSet } from '../../data/sequences.js';
import type { Checkpoint } from '../../model/checkpoint.js';
import type { Runtime } from '../../onnx/runtime.js';
import { tapName } from '../../onnx/emit.js';
import { runStaged } from '../../onnx/staged.js';
import type { Formulation } from '../formulate.js';
import { violations, type Choice, type ChoiceProblem } from '../problem.js';
import { parentChoice, plain } from './choices.js';
import type { SearchStrategy } from './strategy.js';

/**
 * ShortGPT's depth pruning: Block Influence BIᵢ = 1 − mean cos(xᵢ, xᵢ₊₁) of each layer's input and
 * output; drop the least influential whole layers, as many as the budget needs.
 */
export function depthChoice(config: ModelConfig, f: Formulation, influence: readonly number[], p: ChoiceProblem = f.problem): Choice | null {
  const choice = parentChoice(config, f);
  const order = influence.map((bi, i) => [bi, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (const [, i] of order) {
    if (violations(p, choice).length === 0) return choice;
    const drop = f.blocks[i].findIndex((b) => removesSubBlock('attention', b.attention) && removesSubBlock('ffn', b.ffn));
    if (drop < 0) return null;
    choice[i] = drop;
  }
  return violations(p, choice).length === 0 ? choice : null;
}

/** BIᵢ from the residual stream entering each layer and leaving it, [tokens, hidden] each. */
export function blockInfluence(streams: readonly Float32Array[], hidden: number): number[] {
  const out: number[] = [];
  for (let i = 0; i + 1 < streams.length; i++) {
    const [a, b] = [streams[i], streams[i + 1]];
    const tokens = a.length / hidden;
    let sum = 0;
    for (let t = 0; t < tokens; t++) {
      let dot = 0;
      let na = 0;
      let nb = 0;
      for (let k = t * hidden; k < (t + 1) * hidden; k++) {
        dot += a[k] * b[k];
        na += a[k] * a[k];
        nb += b[k] * b[k];
      }
      sum += dot / Math.sqrt(na * nb);
    }
    out.push(1 - sum / tokens);
  }
  return out;
}

/** Each layer's Block Influence on the first `tokens` tokens of a window set (whole windows, at least one). */
export async function blockInfluenceOn(parent: Checkpoint, windows: WindowSet, seqLen: number, runtime: Runtime, tokens = 1024): Promise<number[]> {
  const L = parent.config.numLayers;
  const count = Math.min(windows.count, Math.max(1, Math.floor(tokens / seqLen)));
  const taps = Array.from({ length: L + 1 }, (_, layer) => ({ layer, site: 'residual' as const }));
  const residuals: Float32Array[] = taps.map(() => new Float32Array(0));
  const input = { ids: windows.ids.subarray(0, count * seqLen), batch: count, seq: seqLen };
  await runStaged(parent.config, parent.source, runtime, [input], { logits: 'none', taps }, () => {}, (_, got) => {
    taps.forEach((t, k) => {
      const r = got.get(tapName(t));
      if (r !== undefined) residuals[k] = r.data;
    });
  });
  return blockInfluence(residuals, parent.config.hiddenSize);
}

export const depth: SearchStrategy = {
  name: 'depth',
  description: 'drop the whole layers of least Block Influence until the budgets are met (ShortGPT)',
  search: async ({ config, formulation, problem, blockInfluence: influence }) => plain(depthChoice(config, formulation, await influence(), problem)),
};
