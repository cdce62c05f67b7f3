import { sameAttention, sameFfn } from '../arch/variants/registry.js';
import { type BlockConfig } from '../arch/variant.js';
import type { Rng } from '../util/rng.js';
import { layersDiffering, objectiveOf, usageOf, type Budget, type Choice, type ChoiceProblem } from './problem.js';

/** A move: new options for some layers. */
export interface Move {
  readonly changes: readonly (readonly [layer: number, option: number])[];
  /** One sub-block changed (or both, where the space ties them); a change plus another layer's to pay for it (under a binding budget); two layers swapped. */
  readonly kind: 'attention' | 'ffn' | 'block' | 'exchange' | 'swap';
}

/**
 * The neighbourhood: change one layer's attention or FFN variant (keeping the other sub-block), or swap
 * the blocks of two layers — only moves that stay within every budget. A single change that would break
 * a budget is paired with the change elsewhere that restores it at the least additive cost, so the
 * search can trade quality between layers when the budget is spent, as it always is at the MIP's optimum.
 */
export function neighbours(p: ChoiceProblem, blocks: readonly (readonly BlockConfig[])[], c: Choice): Move[] {
  const delta = deltaEvaluator(p, c);
  const singles: Move[] = [];
  c.forEach((j, i) => {
    const cur = blocks[i][j];
    blocks[i].forEach((b, k) => {
      if (k === j) return;
      if (sameFfn(b.ffn, cur.ffn)) singles.push({ changes: [[i, k]], kind: 'attention' });
      else if (sameAttention(b.attention, cur.attention)) singles.push({ changes: [[i, k]], kind: 'ffn' });
      // Spaces that tie sub-blocks together (whole-layer dropping) only allow changing both at once.
      else if (!blocks[i].some((x) => (sameAttention(x.attention, b.attention) && sameFfn(x.ffn, cur.ffn)) || (sameAttention(x.attention, cur.attention) && sameFfn(x.ffn, b.ffn)))) {
        singles.push({ changes: [[i, k]], kind: 'block' });
      }
    });
  });
  const moves = singles.filter((m) => delta.feasible(m.changes));
  for (const m of singles) {
    if (delta.feasible(m.changes)) continue;
    let repair: { changes: Move['changes']; objective: number } | null = null;
    for (const r of singles) {
      if (r.changes[0][0] === m.changes[0][0]) continue;
      const changes = [...m.changes, ...r.changes];
      if (!delta.feasible(changes)) continue;
      const objective = delta.objective(changes);
      if (repair === null || objective < repair.objective) repair = { changes, objective };
    }
    if (repair !== null) moves.push({ changes: repair.changes, kind: 'exchange' });
  }
  for (let a = 0; a < c.length; a++) {
    for (let b = a + 1; b < c.length; b++) {
      const ja = blocks[b].findIndex((x) => sameAttention(x.attention, blocks[a][c[a]].attention) && sameFfn(x.ffn, blocks[a][c[a]].ffn));
      const jb = blocks[a].findIndex((x) => sameAttention(x.attention, blocks[b][c[b]].attention) && sameFfn(x.ffn, blocks[b][c[b]].ffn));
      const changes: Move['changes'] = [[a, jb], [b, ja]];
      if (ja >= 0 && jb >= 0 && (ja !== c[b] || jb !== c[a]) && delta.feasible(changes)) moves.push({ changes, kind: 'swap' });
    }
  }
  return moves;
}

/** Budget usage, objective and diversity of a choice with a few layers changed, in O(changes) rather than O(layers). */
function deltaEvaluator(p: ChoiceProblem, c: Choice) {
  const usage = p.budgets.map((_, k) => usageOf(p, c, k));
  const base = objectiveOf(p, c);
  const differing = (p.distinctFrom ?? []).map((d) => layersDiffering(c, d));
  const minDiff = p.minDifference ?? 1;
  const slack = (b: Budget) => 1e-7 * Math.abs(b.limit);
  return {
    feasible(changes: Move['changes']): boolean {
      for (let k = 0; k < p.budgets.length; k++) {
        let u = usage[k];
        for (const [i, j] of changes) u += p.layers[i].options[j].usage[k] - p.layers[i].options[c[i]].usage[k];
        if (u > p.budgets[k].limit + slack(p.budgets[k])) return false;
      }
      return (p.distinctFrom ?? []).every((d, s) => {
        let n = differing[s];
        for (const [i, j] of changes) n += (j !== d[i] ? 1 : 0) - (c[i] !== d[i] ? 1 : 0);
        return n >= minDiff;
      });
    },
    objective(changes: Move['changes']): number {
      return changes.reduce((o, [i, j]) => o + p.layers[i].options[j].objective - p.layers[i].options[c[i]].objective, base);
    },
  };
}

export interface TabuOptions {
  readonly maxIterations: number;
  /** An explicit time limit (none by default: a stopping rule that counts work gives the same result on any machine). */
  readonly maxSeconds?: number;
  /** Iterations during which a layer just changed may not change again. */
  readonly tenure: number;
  /** Moves whose true objective is evaluated per iteration: the best by the additive surrogate, plus random ones. */
  readonly candidatesPerIteration: number;
  readonly rng: Rng;
}

export interface TabuResult {
  readonly start: Choice;
  readonly startValue: number;
  readonly best: Choice;
  readonly bestValue: number;
  readonly iterations: number;
  /** Distinct architectures whose true objective was computed. */
  readonly evaluations: number;
  readonly seconds: number;
  /** What ended the search: the iteration limit (reproducible), the time limit (machine-dependent), or no admissible move. */
  readonly stoppedBy: 'iterations' | 'time' | 'no-moves';
}

/**
 * Tabu search on the true (non-additive) objective, from a starting choice: each iteration moves to the
 * best admissible neighbour among a candidate list, even when that is worse, so the search can leave a
 * local optimum; recently changed layers are tabu unless changing one beats the best found (aspiration).
 */
export async function tabuSearch(p: ChoiceProblem, blocks: readonly (readonly BlockConfig[])[], start: Choice, trueObjective: (c: Choice) => Promise<number>, o: TabuOptions): Promise<TabuResult> {
  const t0 = performance.now();
  const seen = new Map<string, number>();
  const value = async (c: Choice) => {
    const key = c.join(',');
    let v = seen.get(key);
    if (v === undefined) seen.set(key, (v = await trueObjective(c)));
    return v;
  };
  let current = [...start];
  const startValue = await value(current);
  let best = { choice: [...current], value: startValue };
  const tabuUntil = new Map<number, number>(); // layer → first iteration it may change again
  let iteration = 0;
  let stoppedBy: TabuResult['stoppedBy'] = 'iterations';
  while (iteration < o.maxIterations) {
    if ((performance.now() - t0) / 1000 >= (o.maxSeconds ?? Infinity)) {
      stoppedBy = 'time';
      break;
    }
    iteration++;
    const moves = neighbours(p, blocks, current);
    if (moves.length === 0) {
      stoppedBy = 'no-moves';
      break;
    }
    const apply = (m: Move) => {
      const next = [...current];
      for (const [i, j] of m.changes) next[i] = j;
      return next;
    };
    const surrogate = (m: Move) => objectiveOf(p, apply(m));
    const ranked = [...moves].sort((a, b) => surrogate(a) - surrogate(b));
    const greedy = Math.max(1, Math.ceil(o.candidatesPerIteration * 0.75));
    const list = ranked.slice(0, greedy);
    const rest = ranked.slice(greedy);
    while (list.length < o.candidatesPerIteration && rest.length > 0) list.push(rest.splice(o.rng.int(rest.length), 1)[0]);

    let chosen: { move: Move; value: number } | null = null;
    for (const m of list) {
      if ((performance.now() - t0) / 1000 >= (o.maxSeconds ?? Infinity)) break;
      const v = await value(apply(m));
      const tabu = m.changes.some(([i]) => (tabuUntil.get(i) ?? 0) > iteration);
      if (tabu && v >= best.value) continue;
      if (chosen === null || v < chosen.value) chosen = { move: m, value: v };
    }
    if (chosen === null) continue;
    for (const [i] of chosen.move.changes) tabuUntil.set(i, iteration + o.tenure + 1);
    current = apply(chosen.move);
    if (chosen.value < best.value) best = { choice: [...current], value: chosen.value };
  }
  return { start, startValue, best: best.choice, bestValue: best.value, iterations: iteration, evaluations: seen.size, seconds: (performance.now() - t0) / 1000, stoppedBy };
}
