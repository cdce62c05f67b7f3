import type { Architecture } from '../arch/variant.js';
import { cachedKvHeadsOf } from '../arch/variants/registry.js';
import type { ModelConfig } from '../arch/config.js';
import { fusedAttentionRuns, type DecoderGraphOptions } from '../onnx/decoder-graph.js';
import type { Decoder } from '../onnx/staged.js';

/**
 * How a decoder for generation is built: the last position's logits and K/V caches in onnxruntime buffers, where
 * its fused attention kernel runs the model; else the whole prefix each step.
 */
export const generationOptions = (config: ModelConfig): Pick<DecoderGraphOptions, 'logits' | 'kvCache' | 'fusedAttention' | 'kvBuffer'> =>
  fusedAttentionRuns(config) ? { logits: 'last', kvCache: true, fusedAttention: true, kvBuffer: true } : { logits: 'last' };

/**
 * Greedy (argmax) continuation of `prompt` up to `totalLength` tokens, prompt included. It stops early
 * at any of `stopIds` (for llama2.c models that is BOS, which separates stories).
 *
 * A decoder built with K/V buffers (`kvCache`, `fusedAttention` and `kvBuffer`; `architecture` gives each layer's
 * cached heads) runs the prompt in one call and then one call per new token, appending to onnxruntime's buffers in
 * place: linear in the length. Any other decoder reruns the whole prefix each step — quadratic, but it checks a
 * graph step for step against another runtime without a cache in between.
 */
export async function greedyGenerate(session: Decoder, prompt: readonly number[], totalLength: number, stopIds: readonly number[] = [], architecture?: Architecture): Promise<number[]> {
  if (session.options.logits !== 'last') throw new Error('greedyGenerate needs a session built with logits: "last"');
  const ids = [...prompt];
  if (session.options.kvBuffer === true && architecture === undefined) throw new Error('greedyGenerate with K/V buffers needs the architecture (each layer\'s cached heads)');
  const buffers = session.options.kvBuffer === true ? await session.kvBuffers(1, totalLength, cachedKvHeadsOf(session.config, architecture!)) : null;
  try {
    while (ids.length < totalLength) {
      // With buffers, the positions they do not hold yet (the prompt, then the last token); else the whole prefix.
      const input = Int32Array.from(buffers === null ? ids : ids.slice(buffers.length));
      const { logits } = await session.run({ ids: input, batch: 1, seq: input.length }, buffers ?? undefined);
      const next = argmax(logits!.data);
      if (stopIds.includes(next)) break;
      ids.push(next);
    }
    return ids;
  } finally {
    await buffers?.dispose();
  }
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}
