import { describe, expect, it } from 'vitest';
import { firstInvalidUtf8 } from '../src/data/text.js';
import { Rng } from '../src/util/rng.js';

const decodes = (b: Uint8Array) => {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(b);
    return true;
  } catch {
    return false;
  }
};

describe('UTF-8 validation', () => {
  it("agrees with the platform's strict decoder on random bytes and mangled text, and names the first bad byte", () => {
    const rng = new Rng(3);
    const text = Buffer.from('Tom said: “naïve café — 日本語 🙂”. ', 'utf8');
    for (let t = 0; t < 3000; t++) {
      const b = t % 2 === 0 ? Uint8Array.from({ length: 1 + rng.int(12) }, () => rng.int(256)) : Uint8Array.from(text);
      if (t % 2 === 1) for (let k = 0; k < 1 + rng.int(2); k++) b[rng.int(b.length)] = rng.int(256);
      const at = firstInvalidUtf8(b);
      expect(at === -1).toBe(decodes(b));
      if (at >= 0) {
        // Everything before it is valid, and no valid sequence starts at it.
        expect(decodes(b.subarray(0, at))).toBe(true);
        expect([1, 2, 3, 4].some((n) => at + n <= b.length && decodes(b.subarray(at, at + n)) && firstInvalidUtf8(b.subarray(at, at + n)) === -1 && decodes(b.subarray(0, at + n)))).toBe(false);
      }
    }
  });
});
