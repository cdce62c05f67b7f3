import type { TextTokenizer } from '../model/tokenizer.js';

/** A list of token sequences to evaluate, each predicted from its first token on. */
export type Sequences = number[][];

/**
 * One sequence per paragraph, each with BOS and truncated to `seqLen`: the protocol of the shared
 * models' reference.json ("split on blank lines, strip, first N paragraphs").
 */
export function paragraphSequences(tokenizer: TextTokenizer, docs: readonly string[], seqLen: number): Sequences {
  return docs.map((d) => tokenizer.encode(d).slice(0, seqLen)).filter((s) => s.length >= 2);
}

/**
 * The documents encoded (each with BOS) and concatenated into one stream, cut into windows of exactly
 * `seqLen` tokens until `maxTokens` are taken: equal lengths batch well, which calibration needs.
 */
export function streamWindows(tokenizer: TextTokenizer, docs: readonly string[], seqLen: number, maxTokens: number): Sequences {
  const windows: Sequences = [];
  let current: number[] = [];
  for (const doc of docs) {
    for (const id of tokenizer.encode(doc)) {
      current.push(id);
      if (current.length === seqLen) {
        windows.push(current);
        current = [];
        if (windows.length * seqLen >= maxTokens) return windows;
      }
    }
  }
  return windows;
}

/** Groups sequences into equal-length batches of at most `maxBatch`, keeping each sequence's index. */
export function equalLengthBatches(seqs: Sequences, maxBatch: number): { indices: number[]; seq: number }[] {
  const byLength = new Map<number, number[]>();
  seqs.forEach((s, i) => {
    const list = byLength.get(s.length) ?? [];
    list.push(i);
    byLength.set(s.length, list);
  });
  const batches: { indices: number[]; seq: number }[] = [];
  for (const [seq, indices] of [...byLength].sort((a, b) => a[0] - b[0])) {
    for (let i = 0; i < indices.length; i += maxBatch) batches.push({ indices: indices.slice(i, i + maxBatch), seq });
  }
  return batches;
}
