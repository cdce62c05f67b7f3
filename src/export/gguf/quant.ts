import { f32ToF16 } from '../../model/dtype.js';
import { encodeTensor } from '../../model/save.js';
import type { Tensor } from '../../util/tensor.js';
import type { GgmlType } from './format.js';

/** C's roundf: halves away from zero (JavaScript's Math.round takes −2.5 to −2). */
const roundf = (x: number) => Math.sign(x) * Math.round(Math.abs(x));

/**
 * ggml's quantize_row_q8_0_ref: blocks of 32 values, each a float16 scale d = amax / 127 and 32 int8 values
 * roundf(x / d) (x times 1/d, in float32, as ggml computes it).
 */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % 32 !== 0) throw new Error(`Q8_0 quantises blocks of 32 values; ${x.length} is not a multiple of 32`);
  const out = new Uint8Array((x.length / 32) * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    view.setUint16(b * 34, f32ToF16(Float32Array.of(d))[0], true);
    for (let j = 0; j < 32; j++) view.setInt8(b * 34 + 2 + j, roundf(Math.fround(x[b * 32 + j] * id)));
  }
  return out;
}

/** A tensor's bytes as a GGUF tensor of `type` (float types as safetensors stores them: float16 refuses values beyond its range). */
export function encodeAs(type: GgmlType, t: Tensor, name: string): Uint8Array {
  return type === 'Q8_0' ? quantizeQ8_0(t.data) : encodeTensor(t, type, name);
}
