/** DeciLM's FFN width encoding: widths as multiples of the hidden size, rounded up to 256. */

/** DeciLM's `_ffn_mult_to_intermediate_size`: int(2·mult·hidden/3) rounded up to a multiple of 256. */
export function ffnMultToIntermediate(ffnMult: number, hiddenSize: number): number {
  const n = Math.trunc((2 * ffnMult * hiddenSize) / 3);
  return n % 256 === 0 ? n : n + 256 - (n % 256);
}

/** The ffn_mult (rounded to 6 decimals, as DeciLM stores it) that maps back to exactly `intermediate`, if any. */
export function intermediateToFfnMult(intermediate: number, hiddenSize: number): number | null {
  const mult = Math.round(((3 * intermediate) / (2 * hiddenSize)) * 1e6) / 1e6;
  return ffnMultToIntermediate(mult, hiddenSize) === intermediate ? mult : null;
}
