import { describe, expect, it } from 'vitest';
import type { Architecture } from '../src/arch/variant.js';
import { calibrated, calibrationOf, fitLine } from '../src/hardware/calibrate.js';
import { blockSum } from '../src/hardware/profile.js';
import { Rng } from '../src/util/rng.js';

describe('calibrating sub-block times on whole models', () => {
  it('fits the least-squares line: exact on points of a line, the normal equations on noisy ones', () => {
    expect(fitLine([1, 2, 4], [3.5, 5.5, 9.5])).toEqual({ intercept: 1.5, slope: 2 });
    const rng = new Rng(3);
    const xs = Array.from({ length: 50 }, () => rng.next() * 10);
    const ys = xs.map((x) => 0.3 + 1.7 * x + 0.1 * rng.normal());
    const { intercept, slope } = fitLine(xs, ys);
    // The residuals of a least-squares line sum to zero and are orthogonal to x.
    const residuals = xs.map((x, i) => ys[i] - intercept - slope * x);
    expect(Math.abs(residuals.reduce((a, b) => a + b, 0))).toBeLessThan(1e-9);
    expect(Math.abs(residuals.reduce((a, r, i) => a + r * xs[i], 0))).toBeLessThan(1e-8);
    expect(() => fitLine([1, 1], [2, 3])).toThrow(RangeError);
  });

  it('folds the line into the times so that any architecture adds up to the line at its sum', () => {
    const times = {
      rest: { prefillSeconds: 0.01, decodeSeconds: 0.02 },
      'attn-gqa4': { prefillSeconds: 0.004, decodeSeconds: 0.006 },
      'attn-noop': { prefillSeconds: 0, decodeSeconds: 0 },
      'ffn-swiglu8': { prefillSeconds: 0.003, decodeSeconds: 0.005 },
      'ffn-noop': { prefillSeconds: 0, decodeSeconds: 0 },
    };
    const gqa = { kind: 'gqa', kvHeads: 4 } as const;
    const swiglu = { kind: 'swiglu', intermediate: 8 } as const;
    const noop = { kind: 'noop' } as const;
    const archs: Architecture[] = [
      [{ attention: gqa, ffn: swiglu }, { attention: gqa, ffn: swiglu }],
      [{ attention: noop, ffn: swiglu }, { attention: gqa, ffn: noop }],
      [{ attention: noop, ffn: noop }, { attention: noop, ffn: swiglu }],
    ];
    // Whole models that pay 5 ms more per prefill and 30% more per decode than their blocks add up to.
    const points = archs.map((a) => {
      const predicted = blockSum(times, a);
      return { predicted, measured: { prefillSeconds: 0.005 + predicted.prefillSeconds, decodeSeconds: 1.3 * predicted.decodeSeconds } };
    });
    const c = calibrationOf(points);
    expect(c.prefill.intercept).toBeCloseTo(0.005, 12);
    expect(c.prefill.slope).toBeCloseTo(1, 12);
    expect(c.decode.intercept).toBeCloseTo(0, 12);
    expect(c.decode.slope).toBeCloseTo(1.3, 12);
    const folded = calibrated(times, c);
    for (const p of points) {
      const [a] = archs.filter((x) => blockSum(times, x).prefillSeconds === p.predicted.prefillSeconds);
      expect(blockSum(folded, a).prefillSeconds).toBeCloseTo(p.measured.prefillSeconds, 12);
      expect(blockSum(folded, a).decodeSeconds).toBeCloseTo(p.measured.decodeSeconds, 12);
    }
  });

  it('falls back to the ratio of totals through 0 when the line would shrink a time with its sum', () => {
    const pt = (x: number, y: number) => ({ predicted: { prefillSeconds: x, decodeSeconds: x }, measured: { prefillSeconds: y, decodeSeconds: y } });
    const c = calibrationOf([pt(1, 3), pt(2, 2), pt(3, 1)]);
    expect(c.prefill).toEqual({ intercept: 0, slope: 1 });
    expect(calibrationOf([pt(2, 3), pt(2, 5)]).decode).toEqual({ intercept: 0, slope: 2 });
  });
});
