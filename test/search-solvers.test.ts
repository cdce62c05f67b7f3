import { describe, expect, it } from 'vitest';
import { bruteForce, dynamicProgramme } from '../src/search/exact.js';
import { highsBackend } from '../src/search/highs-backend.js';
import { lpSolverBackend } from '../src/search/lp-solver-backend.js';
import { infeasibilityReport, layersDiffering, objectiveOf, violations, type ChoiceProblem } from '../src/search/problem.js';
import { randomChoiceProblem } from '../src/search/instances.js';
import { Rng } from '../src/util/rng.js';

const instance = (seed: number, layers: number, options: number, budgets: number, tightness: number, integer = false): ChoiceProblem =>
  randomChoiceProblem(new Rng(seed), layers, options, budgets, tightness, integer);

const backends = [highsBackend, lpSolverBackend];

describe('MIP backends agree with exact references', () => {
  for (const backend of backends) {
    it(`${backend.name}: single budget, optimum equals the DP's on 12 instances`, async () => {
      for (let seed = 1; seed <= 12; seed++) {
        const p = instance(seed, 8, 5, 1, 0.55, true);
        const exact = dynamicProgramme(p)!;
        const r = await backend.solve(p, { timeLimitSeconds: 10 });
        expect(r.status, `seed ${seed}`).toBe('optimal');
        expect(violations(p, r.choice!)).toEqual([]);
        expect(r.objective!).toBeCloseTo(exact.objective, 9);
      }
    });

    it(`${backend.name}: two budgets, optimum equals brute force`, async () => {
      for (let seed = 20; seed < 26; seed++) {
        const p = instance(seed, 6, 4, 2, 0.6);
        const exact = bruteForce(p)!;
        const r = await backend.solve(p, { timeLimitSeconds: 10 });
        expect(r.status).toBe('optimal');
        expect(r.objective!).toBeCloseTo(exact.objective, 9);
      }
    });
  }

  it('the DP and brute force agree with each other', () => {
    for (let seed = 40; seed < 45; seed++) {
      const p = instance(seed, 6, 4, 1, 0.5, true);
      expect(dynamicProgramme(p)!.objective).toBeCloseTo(bruteForce(p)!.objective, 12);
    }
  });

  it('HiGHS proves the optimum of an 80-layer × 30-option instance with two budgets in seconds', async () => {
    const p = instance(7, 80, 30, 2, 0.5);
    const r = await highsBackend.solve(p, { timeLimitSeconds: 60 });
    expect(r.status).toBe('optimal');
    expect(r.gap).toBe(0);
    expect(violations(p, r.choice!)).toEqual([]);
  });
});

describe('infeasible budgets and diverse solutions', () => {
  it('reports infeasibility with the budget that cannot be met and its best reachable value', async () => {
    const p = instance(3, 5, 3, 2, 0.01);
    for (const backend of backends) expect((await backend.solve(p, { timeLimitSeconds: 10 })).status).toBe('infeasible');
    expect(infeasibilityReport(p)).toMatch(/^these budgets cannot be met by any architecture in the space\n {2}budget 0: limit [\d.]+ u, best reachable [\d.]+ u — cannot be met/);
  });

  it('finds a second solution that differs in at least d layers', async () => {
    const p = instance(5, 10, 4, 1, 0.6);
    const first = await highsBackend.solve(p, { timeLimitSeconds: 10 });
    const q = { ...p, distinctFrom: [first.choice!], minDifference: 3 };
    for (const backend of backends) {
      const second = await backend.solve(q, { timeLimitSeconds: 10 });
      expect(second.status).toBe('optimal');
      expect(layersDiffering(first.choice!, second.choice!)).toBeGreaterThanOrEqual(3);
      expect(second.objective!).toBeGreaterThanOrEqual(first.objective! - 1e-9);
      expect(second.objective!).toBeCloseTo(bruteForce(q)!.objective, 9);
    }
  });

  it('verification catches a choice that breaks a budget', () => {
    const p = instance(2, 4, 3, 1, 0.5, true);
    expect(violations(p, [0, 0, 0, 0])[0]).toMatch(/^budget 0: uses [\d.]+ u, over the limit [\d.]+ u$/);
    expect(objectiveOf(p, [0, 0, 0, 0])).toBe(0);
  });
});
