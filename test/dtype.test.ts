import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToF16, halfToFloat } from '../src/model/dtype.js';
import { Rng } from '../src/util/rng.js';

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

describe('float16 encoding', () => {
  // Every finite half, sorted by value: the brute-force nearest (ties to the even bit pattern) is the reference.
  const halves = Array.from({ length: 0x10000 }, (_, h) => h).filter((h) => Number.isFinite(halfToFloat(h)) && h !== 0x8000);
  const values = halves.map(halfToFloat);
  const nearest = (x: number): number => {
    if (Math.abs(x) > 65520) return x > 0 ? 0x7c00 : 0xfc00; // past the midpoint of 65504 and 2^16
    let best = halves[0];
    let bestDistance = Infinity;
    halves.forEach((h, k) => {
      const d = Math.abs(values[k] - x);
      if (d < bestDistance || (d === bestDistance && (h & 1) === 0)) [best, bestDistance] = [h, d];
    });
    return x === 0 && Object.is(x, -0) ? 0x8000 : best === 0 && x < 0 ? 0x8000 : best;
  };

  it('rounds float32 values to the nearest float16, ties to even, as a brute-force search over all halves', () => {
    const rng = new Rng(9);
    const xs = [0, 1, -1, 65504, 65519, 65520.5, -70000, 6e-8, 2.98e-8, 3e-8, 1e-9, 0.1, 1 / 3, 1.00048828125, 1.000732421875, 2049, 2051];
    for (let i = 0; i < 400; i++) xs.push(Math.fround((rng.next() - 0.5) * 2 ** Math.floor(rng.next() * 40 - 26)));
    // The exact midpoints between neighbouring halves: ties.
    for (let k = 1000; k < 1010; k++) xs.push((values[k] + values[k + 1]) / 2);
    const got = f32ToF16(Float32Array.from(xs));
    xs.forEach((x, i) => expect(got[i], `${x}`).toBe(nearest(Math.fround(x))));
  });

  it('keeps Infinity and NaN', () => {
    const got = f32ToF16(Float32Array.of(Infinity, -Infinity, NaN));
    expect([got[0], got[1]]).toEqual([0x7c00, 0xfc00]);
    expect(Number.isNaN(halfToFloat(got[2]))).toBe(true);
  });
});
