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

/** Which part of a text a set of windows came from: paragraphs [from, to) of the blank-line-separated file. */
export interface TextRange {
  readonly file: string;
  readonly paragraphs: readonly [number, number];
  readonly windows: number;
  readonly tokens: number;
}

export interface WindowSet {
  /** Token windows of exactly seqLen, each row-major in `ids`. */
  readonly ids: Int32Array;
  readonly count: number;
  readonly range: TextRange;
}

/** Windows of `seqLen` tokens from paragraph `start` on, up to `maxTokens` (rounded up to whole windows). */
export function takeWindows(tokenizer: TextTokenizer, docs: readonly string[], start: number, file: string, seqLen: number, maxTokens: number): WindowSet {
  const count = Math.ceil(maxTokens / seqLen);
  const ids = new Int32Array(count * seqLen);
  let filled = 0;
  let doc = start;
  while (filled < ids.length && doc < docs.length) {
    const tokens = tokenizer.encode(docs[doc++]);
    const take = Math.min(tokens.length, ids.length - filled);
    ids.set(tokens.slice(0, take), filled);
    filled += take;
  }
  const windows = Math.floor(filled / seqLen);
  return {
    ids: ids.subarray(0, windows * seqLen),
    count: windows,
    range: { file, paragraphs: [start, doc], windows, tokens: windows * seqLen },
  };
}

/** Every whole window of `seqLen` tokens in paragraphs [from, to): a training set. */
export function allWindows(tokenizer: TextTokenizer, docs: readonly string[], from: number, to: number, file: string, seqLen: number): WindowSet {
  const tokens = docs.slice(from, to).flatMap((d) => tokenizer.encode(d));
  const windows = Math.floor(tokens.length / seqLen);
  return {
    ids: Int32Array.from(tokens.slice(0, windows * seqLen)),
    count: windows,
    range: { file, paragraphs: [from, to], windows, tokens: windows * seqLen },
  };
}

/** One batch of whole windows: `batch` windows, covering token positions [from, to). */
export interface WindowBatch {
  readonly batch: number;
  readonly from: number;
  readonly to: number;
}

/** Consecutive batches of whole windows of `seqLen` tokens, about `batchTokens` tokens each (at least one window). */
export function* windowBatches(windows: number, seqLen: number, batchTokens: number): Generator<WindowBatch> {
  const perBatch = Math.max(1, Math.floor(batchTokens / seqLen));
  for (let w = 0; w < windows; w += perBatch) {
    const batch = Math.min(perBatch, windows - w);
    yield { batch, from: w * seqLen, to: (w + batch) * seqLen };
  }
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
