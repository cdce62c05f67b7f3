import type { Decoder } from '../onnx/staged.js';

/**
 * Greedy (argmax) continuation of `prompt` up to `totalLength` tokens, prompt included. It stops early
 * at any of `stopIds` (for llama2.c models that is BOS, which separates stories). Without a KV cache
 * each step reruns the whole prefix: fine for checking a model, not a serving path.
 */
export async function greedyGenerate(session: Decoder, prompt: readonly number[], totalLength: number, stopIds: readonly number[] = []): Promise<number[]> {
  if (session.options.logits !== 'last') throw new Error('greedyGenerate needs a session built with logits: "last"');
  const ids = [...prompt];
  while (ids.length < totalLength) {
    const { logits } = await session.run({ ids: Int32Array.from(ids), batch: 1, seq: ids.length });
    const next = argmax(logits!.data);
    if (stopIds.includes(next)) break;
    ids.push(next);
  }
  return ids;
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}
