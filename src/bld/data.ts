import type { TextTokenizer } from '../model/tokenizer.js';
import { fail } from '../util/errors.js';

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

export interface DistillationData {
  readonly seqLen: number;
  readonly calibration: WindowSet;
  readonly validation: WindowSet;
}

/**
 * Calibration windows from the start of a text and validation windows from the paragraphs after them,
 * so the two never share text. Paragraphs are encoded with BOS and concatenated, then cut into windows.
 */
export function distillationData(tokenizer: TextTokenizer, docs: readonly string[], file: string, opts: { seqLen: number; calibTokens: number; validTokens: number }): DistillationData {
  const calibration = takeWindows(tokenizer, docs, 0, file, opts.seqLen, opts.calibTokens);
  const validation = takeWindows(tokenizer, docs, calibration.range.paragraphs[1], file, opts.seqLen, opts.validTokens);
  for (const [what, set, want] of [['calibration', calibration, opts.calibTokens], ['validation', validation, opts.validTokens]] as const) {
    if (set.count * opts.seqLen < want) {
      fail(`${file}: has too little text for ${want} ${what} tokens at sequence length ${opts.seqLen} (got ${set.count * opts.seqLen}); use a longer text or fewer tokens`);
    }
  }
  return { seqLen: opts.seqLen, calibration, validation };
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
