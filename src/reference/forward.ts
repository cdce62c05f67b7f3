import type { ModelConfig } from '../arch/config.js';
import { kindOf } from '../arch/variants/registry.js';
import { SUB_BLOCKS } from '../arch/variant.js';
import type { ModelWeights } from '../model/weights.js';
import { add, matVec, rmsNorm } from './math.js';

/**
 * A slow, obvious, plain-TypeScript forward pass of one sequence, written straight from the Llama
 * equations (float64 accumulation); each sub-block is computed by its variant kind's reference. It exists
 * to check the ONNX graphs against an independent implementation on small inputs; nothing on a hot path uses it.
 */
export function referenceForward(config: ModelConfig, weights: ModelWeights, ids: readonly number[]): { logits: Float32Array[]; hidden: Float32Array[][] } {
  const E = config.hiddenSize;
  let x: Float32Array[] = ids.map((id) => weights.embed.data.slice(id * E, (id + 1) * E));
  const hidden: Float32Array[][] = [x];
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
