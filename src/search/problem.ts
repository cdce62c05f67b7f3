/**
 * The architecture choice as a combinatorial problem: pick one option per layer, minimising the summed
 * objective, with every budget's summed usage (plus its fixed part) within its limit.
 */

export interface ChoiceOption {
  readonly objective: number;
  /** Usage of each budget, in the order of `ChoiceProblem.budgets`. */
  readonly usage: readonly number[];
}

export interface Budget {
  readonly name: string;
  /** Σ usage + fixed ≤ limit. */
  readonly limit: number;
  /** Usage that no choice changes (embeddings, LM head, per-call overhead). */
  readonly fixed: number;
  /** Human units for messages: how to print an amount of this budget. */
  readonly unit: string;
  readonly scale: number;
}

export interface ChoiceProblem {
  readonly layers: readonly { readonly options: readonly ChoiceOption[] }[];
  readonly budgets: readonly Budget[];
  /** Earlier solutions a new one must differ from in at least `minDifference` layers (Puzzle's diversity constraint). */
  readonly distinctFrom?: readonly Choice[];
  readonly minDifference?: number;
}

/** One option index per layer. */
export type Choice = readonly number[];

export function objectiveOf(p: ChoiceProblem, c: Choice): number {
  return c.reduce((s, o, i) => s + p.layers[i].options[o].objective, 0);
}

export function usageOf(p: ChoiceProblem, c: Choice, budget: number): number {
  return c.reduce((s, o, i) => s + p.layers[i].options[o].usage[budget], p.budgets[budget].fixed);
}

export function layersDiffering(a: Choice, b: Choice): number {
  return a.reduce((n, o, i) => n + (o === b[i] ? 0 : 1), 0);
}

/** Relative slack allowed when checking a solver's answer (solvers work to ~1e-9 tolerances). */
const TOLERANCE = 1e-7;

/** What is wrong with a choice, as readable strings (empty when it is valid and within every budget). */
export function violations(p: ChoiceProblem, c: Choice): string[] {
  const out: string[] = [];
  if (c.length !== p.layers.length) return [`has ${c.length} layer choices, the problem has ${p.layers.length} layers`];
  c.forEach((o, i) => {
    if (!Number.isInteger(o) || o < 0 || o >= p.layers[i].options.length) out.push(`layer ${i}: option ${o} does not exist`);
  });
  if (out.length > 0) return out;
  p.budgets.forEach((b, k) => {
    const used = usageOf(p, c, k);
    if (used > b.limit + TOLERANCE * Math.abs(b.limit)) out.push(`${b.name}: uses ${format(b, used)}, over the limit ${format(b, b.limit)}`);
  });
  for (const [s, earlier] of (p.distinctFrom ?? []).entries()) {
    const d = layersDiffering(c, earlier);
    if (d < (p.minDifference ?? 1)) out.push(`differs from solution ${s + 1} in ${d} layers; at least ${p.minDifference ?? 1} required`);
  }
  return out;
}

export function format(b: Budget, amount: number): string {
  return `${(amount / b.scale).toPrecision(4)} ${b.unit}`;
}

/**
 * Why a problem may have no solution: each budget's smallest reachable usage on its own (the cheapest
 * option in every layer). A budget whose minimum exceeds its limit is infeasible whatever else is chosen.
 */
export function infeasibilityReport(p: ChoiceProblem): string {
  const lines = p.budgets.map((b, k) => {
    const min = p.layers.reduce((s, l) => s + Math.min(...l.options.map((o) => o.usage[k])), b.fixed);
    const ok = min <= b.limit * (1 + TOLERANCE);
    return { ok, text: `${b.name}: limit ${format(b, b.limit)}, best reachable ${format(b, min)}${ok ? '' : ' — cannot be met'}` };
  });
  const bad = lines.filter((l) => !l.ok);
  const head = bad.length > 0 ? `${bad.length === 1 ? 'this budget cannot' : 'these budgets cannot'} be met by any architecture in the space` : 'each budget can be met alone, but not all of them together (or not with the diversity required)';
  return [head, ...(bad.length > 0 ? bad : lines).map((l) => `  ${l.text}`)].join('\n');
}
