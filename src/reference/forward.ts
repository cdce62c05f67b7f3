import type { ModelConfig } from '../arch/config.js';
import { kindOf } from '../arch/variants/registry.js';
import { SUB_BLOCKS } from '../arch/variant.js';
import type { ModelWeights } from '../model/weights.js';
import { add, matVec, rmsNorm } from './math.js';

/**
 * A slow, obvious, plain-TypeScript forward pass of one sequence, written straight from the Llama
 * equations in float64; each sub-block is computed by its variant kind's reference. It exists
 * to check the ONNX graphs against an independent implementation on small inputs; nothing on a hot path uses it.
 */
export function referenceForward(config: ModelConfig, weights: ModelWeights, ids: readonly number[]): { logits: Float64Array[]; hidden: Float64Array[][] } {
  const E = config.hiddenSize;
  let x: Float64Array[] = ids.map((id) => Float64Array.from(weights.embed.data.subarray(id * E, (id + 1) * E)));
  const hidden: Float64Array[][] = [x];
  for (const layer of weights.layers) {
    for (const sub of SUB_BLOCKS) {
      const w = layer[sub];
      const out = kindOf(sub, w.variant).reference(config, w, x);
      if (out !== null) x = x.map((row, t) => add(row, out[t]));
    }
    hidden.push(x);
  }
  const logits = x.map((row) => matVec(weights.lmHead, rmsNorm(row, weights.finalNorm, config.rmsNormEps)));
  return { logits, hidden };
}
