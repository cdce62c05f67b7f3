/** Conversions of stored half-precision floats to float32 (pure, exact). */

/** bfloat16 is the top half of a float32: shift it back into place. */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
  return new Float32Array(out.buffer);
}

/** IEEE 754 binary16 to float32, including subnormals, infinities and NaN. */
export function f16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i]);
  return out;
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** float32 to bfloat16, rounding to nearest even (NaN stays NaN): how checkpoints are saved in bf16. */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i];
    if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) out[i] = (b >>> 16) | 0x40;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** float32 to IEEE 754 binary16, rounding to nearest even (subnormals, ±Infinity beyond 65504, NaN kept). */
export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i];
    const sign = (b >>> 16) & 0x8000;
    const exponent = (b >>> 23) & 0xff;
    const mantissa = b & 0x7fffff;
    if (exponent === 0xff) {
      out[i] = sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
      continue;
    }
    const e = exponent - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) {
      // A subnormal half (or zero): the implicit bit joins the mantissa, shifted right by 14 − e, rounded to nearest even.
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      const m = mantissa | 0x800000;
      const shift = 14 - e;
      const half = 1 << (shift - 1);
      const rest = m & ((1 << shift) - 1);
      let h = m >>> shift;
      if (rest > half || (rest === half && (h & 1) === 1)) h++;
      out[i] = sign | h;
    } else {
      let h = (e << 10) | (mantissa >>> 13);
      const rest = mantissa & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
      // A carry out of the mantissa moves the exponent up (to Infinity past 65504), which is the right rounding.
      out[i] = sign | h;
    }
  }
  return out;
}
