import { describe, expect, it } from 'vitest';
import { batchMeansInterval, binomialHalfCdf, signTestInterval, describeSpeedup, incompleteBeta, logGamma, preciseEnough, speedupInterval, studentTCdf, studentTQuantile, withinNoise } from '../src/hardware/interval.js';
import { Rng } from '../src/util/rng.js';
import { describeDrift, DRIFT_TOLERANCE, hasDrifted, parentDrift } from '../src/hardware/drift.js';
import { ranSlow, steadyTiming, type Drifts } from '../src/hardware/steady.js';
import type { HardwareProfile } from '../src/hardware/types.js';
import { printEvaluation } from '../src/cli/print.js';
import type { Evaluation } from '../src/evaluate/evaluate.js';

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

  it('counts the binomial(n, ½) tail by closed forms and by brute force over every subset', () => {
    expect(binomialHalfCdf(0, 6)).toBeCloseTo(1 / 64, 15);
    expect(binomialHalfCdf(1, 6)).toBeCloseTo(7 / 64, 15);
    expect(binomialHalfCdf(6, 6)).toBeCloseTo(1, 12);
    for (const n of [1, 5, 12]) {
      const counts = new Array(n + 1).fill(0);
      for (let mask = 0; mask < 2 ** n; mask++) counts[mask.toString(2).split('').filter((c) => c === '1').length]++;
      let cumulative = 0;
      for (let k = 0; k <= n; k++) {
        cumulative += counts[k];
        expect(binomialHalfCdf(k, n)).toBeCloseTo(cumulative / 2 ** n, 12);
      }
    }
    // Large n neither overflows nor underflows: symmetric about n / 2.
    expect(binomialHalfCdf(999, 2000) + binomialHalfCdf(1000, 2000)).toBeCloseTo(1, 9);
  });

  it('is exact for rounds with one ratio, and covers the true speed-up as often as it says, whatever the noise', () => {
    const exact = speedupInterval([2, 4, 6], [1, 2, 3]);
    expect(exact.estimate).toBeCloseTo(2, 12);
    expect(exact.high - exact.low).toBeCloseTo(0, 12);
    // Brute force: seeded experiments whose times carry 10% log-normal noise around a true ×1.3, or (skewed) that
    // plus a spike doubling one run in five. The sign test's interval covers the median ratio with probability
    // 1 − 2 P(B ≤ k − 1): 15/16 for 5 rounds (the whole range, short of 95%: said so), 31/32 for 6, at least 95% for 20.
    const rng = new Rng(11);
    const trials = 4000;
    const coverage = (rounds: number, spikes: boolean) => {
      let covered = 0;
      let said = 0;
      for (let t = 0; t < trials; t++) {
        const run = (seconds: number) => seconds * Math.exp(0.1 * rng.normal()) * (spikes && rng.next() < 0.2 ? 2 : 1);
        const child = Array.from({ length: rounds }, () => run(0.01));
        const parent = Array.from({ length: rounds }, () => run(0.013));
        const s = speedupInterval(parent, child);
        if (s.low <= 1.3 && 1.3 <= s.high) covered++;
        said = s.confidence;
      }
      return { covered: covered / trials, said };
    };
    const five = coverage(5, false);
    expect(five.said).toBeCloseTo(1 - 2 / 32, 12);
    expect(Math.abs(five.covered - five.said)).toBeLessThan(0.012);
    // From six rounds on, the batch means can only widen it: it covers at least as often.
    const six = coverage(6, false);
    expect(six.said).toBe(0.95);
    expect(six.covered).toBeGreaterThan(1 - 2 / 64 - 0.012);
    const twenty = coverage(20, true);
    expect(twenty.said).toBe(0.95);
    expect(twenty.covered).toBeGreaterThan(1 - 2 * binomialHalfCdf(5, 20) - 0.012);
  });

  it('computes the incomplete beta and Student\'s t at closed forms and table values', () => {
    for (const x of [0.1, 0.5, 0.83]) {
      expect(incompleteBeta(x, 1, 1)).toBeCloseTo(x, 13);
      expect(incompleteBeta(x, 3, 1)).toBeCloseTo(x ** 3, 13);
      expect(incompleteBeta(x, 1, 4)).toBeCloseTo(1 - (1 - x) ** 4, 13);
      expect(incompleteBeta(x, 2.5, 7) + incompleteBeta(1 - x, 7, 2.5)).toBeCloseTo(1, 13);
    }
    // One degree of freedom is Cauchy, two have t = (2p − 1) / √(2p(1 − p)); nine and thirty from printed tables.
    for (const p of [0.6, 0.9, 0.975, 0.995]) {
      expect(studentTQuantile(p, 1)).toBeCloseTo(Math.tan(Math.PI * (p - 0.5)), 8);
      expect(studentTQuantile(p, 2)).toBeCloseTo((2 * p - 1) / Math.sqrt(2 * p * (1 - p)), 8);
    }
    expect(studentTQuantile(0.975, 9)).toBeCloseTo(2.2622, 4);
    expect(studentTQuantile(0.975, 30)).toBeCloseTo(2.0423, 4);
    expect(studentTQuantile(0.025, 9)).toBeCloseTo(-2.2622, 4);
    expect(studentTCdf(0, 5)).toBeCloseTo(0.5, 14);
    expect(() => studentTQuantile(1, 3)).toThrow(RangeError);
  });

  it('gives batch means the t-interval\'s coverage, and widens the speed-up\'s interval where the machine drifted', () => {
    // Batches of one normal sample each: the t-interval of the mean, which covers it 95% of the time exactly.
    const rng = new Rng(21);
    let covered = 0;
    for (let t = 0; t < 4000; t++) {
      const i = batchMeansInterval(Array.from({ length: 8 }, () => 0.3 + 0.1 * rng.normal()), 8, 0.95);
      if (i.low <= 0.3 && 0.3 <= i.high) covered++;
    }
    expect(Math.abs(covered / 4000 - 0.95)).toBeLessThan(0.012);
    expect(() => batchMeansInterval([1, 2, 3], 4, 0.95)).toThrow(RangeError);
    // Rounds of a machine that drifts: each six rounds share a state that moves the log speed-up by 12% (sd), on top
    // of 15% noise per round. The sign test, taking rounds for independent, covers the long-run ×1.5 too rarely; the
    // batches, sitting in different states, disagree and widen it to about what it says.
    const trials = 2000;
    let widened = 0;
    let signOnly = 0;
    for (let t = 0; t < trials; t++) {
      const states = Array.from({ length: 10 }, () => 0.12 * rng.normal());
      const logs = Array.from({ length: 60 }, (_, r) => Math.log(1.5) + states[Math.floor(r / 6)] + 0.15 * rng.normal());
      const s = speedupInterval(logs.map((l) => 0.01 * Math.exp(l)), logs.map(() => 0.01));
      if (s.low <= 1.5 && 1.5 <= s.high) widened++;
      const sign = signTestInterval(logs, 0.95);
      if (sign.low <= Math.log(1.5) && Math.log(1.5) <= sign.high) signOnly++;
    }
    expect(widened / trials).toBeGreaterThan(0.94);
    expect(signOnly / trials).toBeLessThan(0.9);
  });

  it('is not moved by a few spiked rounds, which move a mean of ratios', () => {
    // A child at ×3 whose run is spiked to 3× its time in 8 of 30 rounds (a few milliseconds on a 1 ms run).
    const parent = Array.from({ length: 30 }, () => 0.003);
    const child = parent.map((p, i) => (p / 3) * (i % 4 === 1 ? 3 : 1));
    const s = speedupInterval(parent, child);
    expect(s.estimate).toBeCloseTo(3, 12);
    const geometricMean = Math.exp(parent.reduce((a, p, i) => a + Math.log(p / child[i]), 0) / parent.length);
    expect(geometricMean).toBeLessThan(2.3);
  });

  it('says "within noise" when the interval holds 1, and judges its width on the log scale', () => {
    const noisy = speedupInterval([1, 1.2, 0.9], [1, 1, 1]);
    expect(withinNoise(noisy)).toBe(true);
    expect(describeSpeedup(noisy)).toMatch(/^within noise: ×1\.00 \(75%: 0\.90–1\.20, 3 rounds\)$/);
    const clear = speedupInterval([2, 2.02, 1.98, 2.01, 2, 1.99], [1, 1, 1, 1, 1, 1]);
    expect(withinNoise(clear)).toBe(false);
    expect(describeSpeedup(clear)).toMatch(/^×2\.00 \(95%: 1\.98–2\.02, 6 rounds\)$/);
    expect(preciseEnough(clear, 0.03)).toBe(true);
    expect(preciseEnough(noisy, 0.03)).toBe(false);
    expect(() => speedupInterval([1], [1])).toThrow(RangeError);
  });
});

describe("the machine's drift from its profiled state", () => {
  const measured = { measured: { threads: 2 } } as unknown as HardwareProfile;
  const roofline = { measured: null } as unknown as HardwareProfile;
  const cpu2 = { provider: 'cpu', threads: 2 } as const;

  it('is the parent measured over the parent predicted, where the prediction measured this machine in this setting', () => {
    expect(parentDrift(measured, cpu2, 0.019, 0.0125)).toBeCloseTo(1.52, 12);
    expect(parentDrift(roofline, cpu2, 0.019, 0.0125)).toBeNull();
    // Another provider or thread count is another machine as far as times go.
    expect(parentDrift(measured, { provider: 'webgpu', threads: 2 }, 0.019, 0.0125)).toBeNull();
    expect(parentDrift(measured, { provider: 'cpu', threads: 1 }, 0.019, 0.0125)).toBeNull();
    expect(parentDrift({ measured: { threads: 2, provider: 'webgpu' } } as unknown as HardwareProfile, { provider: 'webgpu', threads: 2 }, 0.019, 0.0125)).toBeCloseTo(1.52, 12);
  });

  it(`says drifted beyond ${100 * DRIFT_TOLERANCE}% either way, alike in ratio`, () => {
    for (const d of [1, 1.05, 0.95, 1 + DRIFT_TOLERANCE - 1e-9, 1 / (1 + DRIFT_TOLERANCE) + 1e-9, null]) expect(hasDrifted(d)).toBe(false);
    for (const d of [1.52, 0.5, 1 + DRIFT_TOLERANCE + 1e-9, 1 / (1 + DRIFT_TOLERANCE) - 1e-9]) expect(hasDrifted(d)).toBe(true);
  });

  it('warns under the evaluation where the parent ran off its profile, and only there', () => {
    const scenario = (name: string, machineDrift: number | null) => ({ scenario: name, parentSeconds: { total: 0.019 }, childSeconds: { total: 0.012 }, said: '×1.60', predictedSpeedup: 1.79, machineDrift });
    const e = { child: 'c', parent: 'p', text: { tokens: 1, file: 'f', note: '' }, kl: 0, perplexity: { parent: 1, child: 1 }, greedyAgreement: { tokens: 0 }, hardwareName: 'measured-cpu-local', latency: [scenario('single-prompt', 1.52), scenario('batch-8', 1.05), scenario('other', null)], skippedScenarios: [] } as unknown as Evaluation;
    const lines: string[] = [];
    printEvaluation(e, (l) => lines.push(l));
    const warnings = lines.filter((l) => l.startsWith('warning:'));
    expect(warnings).toEqual([`warning: single-prompt: ${describeDrift(1.52, 'measured-cpu-local')}`]);
    expect(warnings[0]).toContain('the parent ran ×1.52 slower than measured-cpu-local predicts for it');
    expect(describeDrift(0.5, 'x')).toContain('×2.00 faster');
    // Waiting out a spell (--retime) helps a parent running slow, not one faster than a profile taken in a spell.
    expect(describeDrift(1.52, 'x')).toContain('--retime');
    expect(describeDrift(0.5, 'x')).not.toContain('--retime');
  });
});

describe('timing again while the parent runs slow', () => {
  /** Timings whose parents drift as `drifts` says, one after another, and what the loop waited and was told. */
  const scripted = async (drifts: Drifts[], attempts: number) => {
    const waits: number[] = [];
    const told: Drifts[] = [];
    let next = 0;
    const s = await steadyTiming(() => next++, (k) => drifts[k], { attempts, pauseSeconds: 7, sleep: async (seconds) => { waits.push(seconds); }, onRetry: (d) => told.push(d) });
    return { ...s, waits, told };
  };

  it('times again after a pause until the parent runs as profiled, and keeps the last timing', async () => {
    const s = await scripted([[1.5], [1.3, 1], [1.02, 0.99], [1.6]], 5);
    expect(s.result).toBe(2);
    expect(s.steady).toBe(true);
    expect(s.attempts.map((a) => a.drifts)).toEqual([[1.5], [1.3, 1], [1.02, 0.99]]);
    expect(s.waits).toEqual([7, 7]);
    expect(s.told).toEqual([[1.5], [1.3, 1]]);
  });

  it('stops at its number of timings, the last standing though slow', async () => {
    const s = await scripted([[1.5], [1.4], [1.3]], 2);
    expect(s.result).toBe(1);
    expect(s.steady).toBe(false);
    expect(s.waits).toEqual([7]);
    expect((await scripted([[1.5]], 1)).attempts).toHaveLength(1);
  });

  it('does not time again for a parent faster than profiled, within the tolerance, or without a measured profile', async () => {
    for (const d of [[0.5], [1 + DRIFT_TOLERANCE - 1e-9], [null], []] as Drifts[]) {
      expect(ranSlow(d)).toBe(false);
      const s = await scripted([d, [1]], 3);
      expect(s.attempts).toHaveLength(1);
      expect(s.waits).toEqual([]);
    }
    expect(ranSlow([null, 1 + DRIFT_TOLERANCE + 1e-9])).toBe(true);
  });

  it('says under the evaluation how often a scenario was timed and how slow its parent ran each time', () => {
    const e = { child: 'c', parent: 'p', text: { tokens: 1, file: 'f', note: '' }, kl: 0, perplexity: { parent: 1, child: 1 }, greedyAgreement: { tokens: 0 }, hardwareName: 'm', skippedScenarios: [],
      latency: [{ scenario: 'batch-8', parentSeconds: { total: 0.019 }, childSeconds: { total: 0.012 }, said: '×1.60', predictedSpeedup: 1.79, machineDrift: 1.04, earlierDrifts: [1.52, 1.31] }] } as unknown as Evaluation;
    const lines: string[] = [];
    printEvaluation(e, (l) => lines.push(l));
    expect(lines).toContain('batch-8: timed 3 times, the parent at ×1.52 → ×1.31 → ×1.04 of its profiled time; the last timing stands');
    expect(lines.some((l) => l.startsWith('warning:'))).toBe(false);
  });
});
