import { describe, expect, it } from 'vitest';
import { describeSpeedup, logGamma, preciseEnough, speedupInterval, tQuantile, withinNoise } from '../src/hardware/interval.js';
import { Rng } from '../src/util/rng.js';

describe('speed-up intervals from paired timings', () => {
  it('computes ln Γ at closed forms: factorials and Γ(1/2) = √π', () => {
    let factorial = 1;
    for (let n = 1; n <= 20; n++) {
      expect(logGamma(n)).toBeCloseTo(Math.log(factorial), 10);
      factorial *= n;
    }
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 12);
    expect(logGamma(0.25)).toBeCloseTo(Math.log(3.6256099082219083), 12);
  });

  it("finds Student's t quantiles that match their closed forms (1 and 2 degrees of freedom) and the normal limit", () => {
    // df 1 is Cauchy: tan(π(p − ½)); df 2: (2p − 1) / √(2p(1 − p)).
    expect(tQuantile(1)).toBeCloseTo(Math.tan(Math.PI * 0.475), 6);
    expect(tQuantile(2)).toBeCloseTo(0.95 / Math.sqrt(2 * 0.975 * 0.025), 7);
    expect(tQuantile(1, 0.5)).toBeCloseTo(1, 8);
    expect(tQuantile(1e6)).toBeCloseTo(1.959964, 4);
    const ts = [1, 2, 3, 5, 10, 30, 100].map((df) => tQuantile(df));
    for (let k = 1; k < ts.length; k++) expect(ts[k]).toBeLessThan(ts[k - 1]);
    expect(() => tQuantile(0)).toThrow(RangeError);
  });

  it('is exact for rounds with one ratio, and covers the true speed-up in 95% of seeded experiments', () => {
    const exact = speedupInterval([2, 4, 6], [1, 2, 3]);
    expect(exact.estimate).toBeCloseTo(2, 12);
    expect(exact.high - exact.low).toBeCloseTo(0, 12);
    // Brute force: experiments of 6 rounds whose times carry 10% log-normal noise around a true ×1.3.
    const rng = new Rng(11);
    const trials = 4000;
    let covered = 0;
    for (let t = 0; t < trials; t++) {
      const child = Array.from({ length: 6 }, () => 0.01 * Math.exp(0.1 * rng.normal()));
      const parent = Array.from({ length: 6 }, () => 0.013 * Math.exp(0.1 * rng.normal()));
      const s = speedupInterval(parent, child);
      if (s.low <= 1.3 && 1.3 <= s.high) covered++;
    }
    expect(Math.abs(covered / trials - 0.95)).toBeLessThan(0.012);
  });

  it('says "within noise" when the interval holds 1, and judges its width on the log scale', () => {
    const noisy = speedupInterval([1, 1.2, 0.9], [1, 1, 1]);
    expect(withinNoise(noisy)).toBe(true);
    expect(describeSpeedup(noisy)).toMatch(/^within noise: ×1\.03 \(95%: [\d.]+–[\d.]+, 3 rounds\)$/);
    const clear = speedupInterval([2, 2.02, 1.98, 2.01], [1, 1, 1, 1]);
    expect(withinNoise(clear)).toBe(false);
    expect(describeSpeedup(clear)).toMatch(/^×2\.00 \(95%: 1\.9\d–2\.0\d, 4 rounds\)$/);
    expect(preciseEnough(clear, 0.03)).toBe(true);
    expect(preciseEnough(noisy, 0.03)).toBe(false);
    expect(() => speedupInterval([1], [1])).toThrow(RangeError);
  });
});
