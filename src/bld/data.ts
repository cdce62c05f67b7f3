import type { ModelConfig } from '../arch/config.js';
import { parentArchitecture } from '../arch/config.js';
import { modelParams } from '../arch/params.js';
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

/**
 * Calibration and validation tokens when the user names none, by the parent's size. Scoring costs every
 * candidate a pass of the validation tokens through the parent's later layers and head, so its work grows with
 * the parent's size times those tokens; fewer tokens for larger parents keep a library of a 1B parent well within
 * an hour on two CPU cores (and an 8B one within hours), as bench:scale measures. Fewer validation tokens cost
 * little ranking: every candidate is scored on the same tokens, so their differences are measured more precisely
 * than the KLs themselves. On both shared models, 256 validation tokens rank the candidates as 2048 do
 * (Spearman ρ ≥ 0.99) and lead to children whose KL on unseen text is within ±7% of the 2048-token ones, as
 * often better as worse (bench:tokens). Calibration tokens stay more: they fit the candidates' weights.
 */
export const DEFAULT_TOKENS: readonly { readonly upToParams: number; readonly calibTokens: number; readonly validTokens: number }[] = [
  { upToParams: 0.5e9, calibTokens: 4096, validTokens: 2048 },
  { upToParams: 3e9, calibTokens: 2048, validTokens: 256 },
  { upToParams: Infinity, calibTokens: 1024, validTokens: 256 },
];

export function defaultTokens(config: ModelConfig): { readonly calibTokens: number; readonly validTokens: number } {
  const params = modelParams(config, parentArchitecture(config));
  return DEFAULT_TOKENS.find((d) => params <= d.upToParams)!;
}
