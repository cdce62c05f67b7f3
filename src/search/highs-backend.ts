import highsModule from 'highs';
import { objectiveOf, violations, type ChoiceProblem } from './problem.js';
import { choiceFromValues, normalisedBudgets, varName, type SolveResult, type SolverBackend } from './solver.js';

// A CommonJS module whose module.exports and module.exports.default are both the loader: Node's default
// import hands over the former, Vite's interop (vitest) the latter, and the typings know only the latter.
const highsLoader = (typeof highsModule === 'function' ? highsModule : highsModule.default) as typeof highsModule.default;
type Highs = Awaited<ReturnType<typeof highsLoader>>;
let highs: Promise<Highs> | undefined;

const num = (v: number) => (Number.isFinite(v) ? String(v) : v > 0 ? '1e30' : '-1e30');

/** The problem in CPLEX LP format, the text HiGHS reads. */
export function toLpFormat(p: ChoiceProblem): string {
  const lines: string[] = ['Minimize', ' obj:'];
  const objTerms: string[] = [];
  p.layers.forEach((l, i) => l.options.forEach((o, j) => objTerms.push(`${o.objective >= 0 ? '+' : '-'} ${num(Math.abs(o.objective))} ${varName(i, j)}`)));
  lines.push(...chunk(objTerms), 'Subject To');
  p.layers.forEach((l, i) => lines.push(` one_${i}: ${l.options.map((_, j) => `+ ${varName(i, j)}`).join(' ')} = 1`));
  normalisedBudgets(p).forEach((b, k) => {
    const terms: string[] = [];
    p.layers.forEach((l, i) => l.options.forEach((_, j) => {
      const c = b.coefficient(i, j);
      if (c !== 0) terms.push(`${c >= 0 ? '+' : '-'} ${num(Math.abs(c))} ${varName(i, j)}`);
    }));
    if (terms.length === 0) terms.push(`+ 0 ${varName(0, 0)}`);
    lines.push(` budget_${k}:`, ...chunk(terms), ` <= ${num(b.rhs)}`);
  });
  (p.distinctFrom ?? []).forEach((c, s) => {
    lines.push(` distinct_${s}: ${c.map((j, i) => `+ ${varName(i, j)}`).join(' ')} <= ${p.layers.length - (p.minDifference ?? 1)}`);
  });
  lines.push('Binary', ...chunk(p.layers.flatMap((l, i) => l.options.map((_, j) => varName(i, j)))), 'End');
  return lines.join('\n');
}

/** LP-format lines must stay short: several terms per line. */
function chunk(terms: string[]): string[] {
  const out: string[] = [];
  for (let k = 0; k < terms.length; k += 8) out.push('  ' + terms.slice(k, k + 8).join(' '));
  return out;
}

/** HiGHS (MIT, compiled to WebAssembly): proves optimality with a zero relative gap; the default backend. */
export const highsBackend: SolverBackend = {
  name: 'highs',
  async solve(p, { timeLimitSeconds }): Promise<SolveResult> {
    highs ??= highsLoader();
    const solver = await highs;
    const t0 = performance.now();
    const r = solver.solve(toLpFormat(p), { mip_rel_gap: 0, time_limit: timeLimitSeconds, output_flag: false });
    const seconds = (performance.now() - t0) / 1000;
    if (r.Status === 'Infeasible') return { backend: 'highs', status: 'infeasible', gap: null, seconds };
    const columns = r.Columns as Record<string, { Primal?: number }>;
    const choice = r.Status === 'Optimal' || r.Status === 'Time limit reached' ? choiceFromValues(p, (i, j) => columns[varName(i, j)]?.Primal ?? 0) : null;
    if (choice === null || violations(p, choice).length > 0) {
      return { backend: 'highs', status: r.Status === 'Time limit reached' ? 'no-solution' : 'infeasible', gap: null, seconds, note: `HiGHS status: ${r.Status}` };
    }
    const optimal = r.Status === 'Optimal';
    return { backend: 'highs', status: optimal ? 'optimal' : 'feasible', choice, objective: objectiveOf(p, choice), gap: optimal ? 0 : null, seconds, note: optimal ? undefined : `HiGHS status: ${r.Status}` };
  },
};
