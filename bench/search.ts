/**
 * MIP solve time and optimality per backend on seeded grouped-knapsack instances (layers × options, one
 * and two binding budgets), and on the Nemotron-51B setting: a Llama-3.1-70B parent, puzzle.json,
 * h100-sxm.json, synthetic seeded scores. Writes results/bench-search.json.
 */
import { join } from 'node:path';
import { parseModelConfig } from '../src/model/config.js';
import { llamaConfigJson } from '../src/model/random.js';
import { table } from '../src/util/format.js';
import { PROJECT_ROOT } from '../src/util/project.js';
import { rooflineCostModel } from '../src/hardware/cost-model.js';
import { loadHardwareProfile } from '../src/hardware/load.js';

import { formulate } from '../src/search/formulate.js';
import { randomChoiceProblem, syntheticScores } from '../src/search/instances.js';
import { violations, type ChoiceProblem } from '../src/search/problem.js';
import { SOLVERS } from '../src/search/solve.js';
import { loadSearchSpace } from '../src/space/expand.js';
import { Rng } from '../src/util/rng.js';
import { machine, writeResult } from './support.js';

const LIMIT_SECONDS = 30;

async function main() {
  const cases: { name: string; problem: ChoiceProblem }[] = [];
  for (const [layers, options] of [[16, 10], [32, 20], [80, 30], [80, 60]]) {
    for (const budgets of [1, 2]) cases.push({ name: `${layers}×${options}, ${budgets} budget${budgets > 1 ? 's' : ''}`, problem: randomChoiceProblem(new Rng(layers * 1000 + options * 10 + budgets), layers, options, budgets, 0.5) });
  }
  // Nemotron-51B's setting: Llama-3.1-70B, the puzzle space, an H100 profile, ×1.5 in every scenario and a fit in memory.
  const llama70b = parseModelConfig('Llama-3.1-70B config', llamaConfigJson({ hidden: 8192, layers: 80, heads: 64, kvHeads: 8, intermediate: 28672, vocab: 128256, tied: false, ropeTheta: 500000, maxPositions: 131072 }));
  const space = loadSearchSpace(join(PROJECT_ROOT, 'search-spaces/puzzle.json'), llama70b);
  const profile = loadHardwareProfile(join(PROJECT_ROOT, 'hardware-profiles/h100-sxm.json'));
  const { problem: nemotron } = formulate(llama70b, space, syntheticScores(llama70b, space, new Rng(51)), profile, rooflineCostModel(llama70b, profile), { speedup: 1.5, fitMemory: true }, 'kl');
  cases.push({ name: `Nemotron-51B setting (80×${nemotron.layers[0].options.length}, ${nemotron.budgets.length} budgets)`, problem: nemotron });

  const rows = [];
  for (const c of cases) {
    const reference = null as { objective: number } | null;
    for (const backend of Object.values(SOLVERS)) {
      process.stderr.write(`${c.name} · ${backend.name}\n`);
      const r = await backend.solve(c.problem, { timeLimitSeconds: LIMIT_SECONDS });
      rows.push({ instance: c.name, backend: backend.name, status: r.status, objective: r.objective ?? null, gap: r.gap, seconds: r.seconds, valid: r.choice !== undefined && violations(c.problem, r.choice).length === 0, note: r.note ?? null, reference: reference?.objective ?? null });
    }
  }
  // Optimality: each backend's objective against HiGHS's proved optimum on the same instance.
  const optimum = new Map(rows.filter((r) => r.backend === 'highs' && r.status === 'optimal').map((r) => [r.instance, r.objective!]));
  const withGap = rows.map((r) => ({ ...r, gapToHighsOptimum: r.objective !== null && optimum.has(r.instance) ? (r.objective - optimum.get(r.instance)!) / Math.max(1e-12, Math.abs(optimum.get(r.instance)!)) : null }));
  console.log(table(
    ['instance', 'backend', 'status', 'seconds', 'objective', 'vs HiGHS optimum'],
    withGap.map((r) => [r.instance, r.backend, r.status + (r.note ? ` (${r.note})` : ''), r.seconds.toFixed(2), r.objective === null ? '-' : r.objective.toFixed(4), r.gapToHighsOptimum === null ? '-' : `${(100 * r.gapToHighsOptimum).toFixed(2)}%`]),
  ));
  const path = writeResult('bench-search.json', { what: `MIP backends, time limit ${LIMIT_SECONDS} s, mip_rel_gap 0 for HiGHS; every answer verified against the budgets`, machine: machine(), rows: withGap });
  console.log(`\nwrote ${path}`);
}

await main();
