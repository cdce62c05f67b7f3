import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32 } from '../src/model/dtype.js';

/** An independent binary16 → binary32 conversion by bit manipulation (the decoder uses arithmetic). */
function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  let exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return sign | 0x7f800000 | (mant << 13);
  if (exp === 0) {
    if (mant === 0) return sign;
    // Subnormal: shift the mantissa up until its leading 1 becomes the implicit bit.
    exp = 1;
    while ((mant & 0x400) === 0) {
      mant <<= 1;
      exp--;
    }
    mant &= 0x3ff;
  }
  return sign | ((exp - 15 + 127) << 23) | (mant << 13);
}

describe('half-precision decoding', () => {
  it('decodes all 65,536 float16 bit patterns like a bit-level reference', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const got = f16ToF32(all);
    const bits = new Uint32Array(1);
    const asFloat = new Float32Array(bits.buffer);
    for (let h = 0; h < 65536; h++) {
      bits[0] = f16BitsToF32Bits(h) >>> 0;
      if (Number.isNaN(asFloat[0])) expect(Number.isNaN(got[h])).toBe(true);
      else expect(got[h]).toBe(asFloat[0]);
    }
  });

  it('decodes known float16 values', () => {
    expect(Array.from(f16ToF32(Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x3555)))).toEqual([
      1, -2, 65504, 2 ** -24, Infinity, 0.333251953125,
    ]);
  });

  it('decodes bfloat16 as the top half of a float32', () => {
    expect(Array.from(bf16ToF32(Uint16Array.of(0x3f80, 0xc049, 0x0000, 0x7f80)))).toEqual([1, -3.140625, 0, Infinity]);
  });
});
