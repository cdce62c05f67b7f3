import { takeWindows, type WindowSet } from '../data/sequences.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import { fail } from '../util/errors.js';

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
