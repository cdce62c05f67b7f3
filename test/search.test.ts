import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parentArchitecture } from '../src/arch/config.js';
import type { BlockConfig } from '../src/arch/variant.js';
import { fromDeciBlockConfigs } from '../src/arch/decilm.js';
import { costModelFor, type CostModel } from '../src/hardware/cost-model.js';
import { sumWithin, wholeSeconds, wholeTime } from '../src/hardware/power-law.js';
import { loadHardwareProfile } from '../src/hardware/load.js';
import { architectureCost } from '../src/hardware/model-cost.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { bruteForce } from '../src/search/exact.js';
import { formulate } from '../src/search/formulate.js';
import { objectiveOf, violations, type ChoiceProblem } from '../src/search/problem.js';
import { solutionId, solve } from '../src/search/solve.js';
import { STRATEGIES } from '../src/search/strategies/registry.js';
import { Run } from '../src/run/run.js';
import { exportSolution } from '../src/export/export.js';
import { architectureViolations, runtimeTarget } from '../src/targets/runtimes.js';
import { neighbours, tabuSearch } from '../src/search/tabu.js';
import { loadSearchSpace } from '../src/space/expand.js';
import { Rng } from '../src/util/rng.js';
import { buildLibrary, modelDir, RUNTIME, TINYSTORIES, tempDir } from './support/fixtures.js';

const ROOT = resolve(import.meta.dirname, '..');
const root = tempDir();
const run = join(root, 'run');
const CPU = join(ROOT, 'hardware-profiles/cpu-local.json');
const solveDefaults = { hardware: CPU, metric: 'kl' as const, strategy: 'mip-tabu', solver: 'highs', timeLimitSeconds: 30, solutions: 1, diversity: 2, tabuIterations: 15, samples: 20, seed: 0, runtime: RUNTIME };

describe('Tabu search', () => {
  // Four blocks per layer; the true objective adds a penalty when neighbouring layers both drop attention,
  // which the additive MIP objective cannot see, so the MIP's choice is not the true optimum.
  const blockSet: BlockConfig[] = [
    { attention: { kind: 'gqa', kvHeads: 2 }, ffn: { kind: 'swiglu', intermediate: 8 } },
    { attention: { kind: 'gqa', kvHeads: 2 }, ffn: { kind: 'swiglu', intermediate: 4 } },
    { attention: { kind: 'noop' }, ffn: { kind: 'swiglu', intermediate: 8 } },
    { attention: { kind: 'noop' }, ffn: { kind: 'swiglu', intermediate: 4 } },
  ];
  const layers = 6;
  const blocks = Array.from({ length: layers }, () => blockSet);
  const problemOf = (seed: number): ChoiceProblem => {
    const rng = new Rng(seed);
    return {
      layers: Array.from({ length: layers }, () => ({ options: blockSet.map((_, j) => ({ objective: [0, 1, 1.2, 2.1][j] * (0.8 + 0.4 * rng.next()), usage: [[4, 3, 2, 1][j]] })) })),
      budgets: [{ name: 'time', limit: 15, fixed: 0, unit: 's', scale: 1 }],
    };
  };
  const truthOf = (p: ChoiceProblem) => async (c: readonly number[]) => objectiveOf(p, c) + c.reduce((s, j, i) => s + (i > 0 && j >= 2 && c[i - 1] >= 2 ? 1.5 : 0), 0);
  const trueOptimum = async (p: ChoiceProblem) => {
    let best = Infinity;
    const choice = p.layers.map(() => 0);
    const visit = async (i: number): Promise<void> => {
      if (i === layers) {
        if (violations(p, choice).length === 0) best = Math.min(best, await truthOf(p)(choice));
        return;
      }
      for (let j = 0; j < 4; j++) {
        choice[i] = j;
        await visit(i + 1);
      }
    };
    await visit(0);
    return best;
  };

  it('improves the true objective from the MIP start, within budget, to the brute-force optimum', async () => {
    const reached: number[] = [];
    for (const seed of [9, 10, 11, 12, 13]) {
      const p = problemOf(seed);
      const start = bruteForce(p)!.choice; // the additive optimum, as the MIP gives it
      const optimum = await trueOptimum(p);
      const r = await tabuSearch(p, blocks, start, truthOf(p), { maxIterations: 60, maxSeconds: 30, tenure: 3, candidatesPerIteration: 8, rng: new Rng(1) });
      expect(await truthOf(p)(start), `seed ${seed}`).toBeGreaterThan(optimum);
      expect(r.bestValue, `seed ${seed}`).toBeLessThan(r.startValue);
      expect(r.bestValue).toBeCloseTo(await truthOf(p)(r.best), 12);
      expect(violations(p, r.best)).toEqual([]);
      if (r.bestValue <= optimum + 1e-12) reached.push(seed);
    }
    expect(reached).toEqual([9, 10, 11, 12, 13]);
  });

  it('moves change one sub-block or swap two layers, and stay within budget', () => {
    const p = problemOf(9);
    const moves = neighbours(p, blocks, [0, 0, 0, 3, 3, 3]);
    expect(moves.length).toBeGreaterThan(0);
    for (const m of moves) {
      const next = [0, 0, 0, 3, 3, 3];
      for (const [i, j] of m.changes) next[i] = j;
      expect(violations(p, next)).toEqual([]);
      expect(m.changes).toHaveLength(m.kind === 'swap' || m.kind === 'exchange' ? 2 : 1);
    }
  });
});

describe('solving on a real block library', async () => {
  const { run: built, library } = await buildLibrary({ model: modelDir('stories260K'), space: join(ROOT, 'search-spaces/puzzle.json'), data: TINYSTORIES, out: run, calibTokens: 1024, validTokens: 512, seqLen: 64, workers: 2 });
  const ck = loadCheckpoint(modelDir('stories260K'));
  const profile = loadHardwareProfile(CPU);
  const costs = costModelFor(ck.config, profile);

  it('formulates options as the space\'s blocks priced by the cost model, with limits from the parent', async () => {
    const space = loadSearchSpace(join(ROOT, 'search-spaces/puzzle.json'), ck.config);
    const { problem, blocks } = formulate(ck.config, space, library.scores(), profile, costs, { speedup: 2, paramsRatio: 0.8 }, 'kl');
    expect(problem.layers).toHaveLength(5);
    expect(blocks[0]).toHaveLength(45);
    expect(problem.budgets.map((b) => b.name)).toEqual(['time in scenario "single-prompt"', 'time in scenario "batch-8"', 'parameters']);
    const parent = architectureCost(ck.config, parentArchitecture(ck.config), profile, costs);
    expect(problem.budgets[0].limit).toBeCloseTo(parent[0].totalSeconds / 2, 12);
    const parentChoice = blocks.map((bs) => bs.findIndex((b) => b.attention.kind === 'gqa' && b.attention.kvHeads === 4 && b.ffn.kind === 'swiglu' && b.ffn.intermediate === 172));
    const used = parentChoice.reduce((s, j, i) => s + problem.layers[i].options[j].usage[0], problem.budgets[0].fixed);
    expect(used).toBeCloseTo(parent[0].totalSeconds, 12);
    expect(objectiveOf(problem, parentChoice)).toBeLessThan(1e-5);
  });

  it('prices time budgets under a measured profile tighter by its calibration error', () => {
    const space = loadSearchSpace(join(ROOT, 'search-spaces/puzzle.json'), ck.config);
    const line = { intercept: 0, slope: 1 };
    const pt = (x: number, y: number) => ({ predicted: { prefillSeconds: 0, decodeSeconds: x }, measured: { prefillSeconds: 0, decodeSeconds: y } });
    // Whole models priced 10% over and 10% under their times: an error of 10% (root mean square).
    const calibration = { 'single-prompt': { prefill: line, decode: line, points: [pt(1.1, 1), pt(0.9, 1)] } };
    const measured = { ...profile, measured: { model: { dir: '', hiddenSize: 64, numHeads: 8, headDim: 8, vocabSize: 512 }, threads: 1, repeats: 1, scenarios: {}, calibration } };
    const plain = formulate(ck.config, space, library.scores(), profile, costs, { speedup: 2 }, 'kl').problem.budgets;
    const tight = formulate(ck.config, space, library.scores(), measured, costs, { speedup: 2 }, 'kl').problem.budgets;
    expect(tight[0].limit).toBeCloseTo(plain[0].limit / 1.1, 12);
    expect(tight[0].name).toBe('time in scenario "single-prompt" (priced 10.0% under the budget: the measured profile\'s calibration error)');
    expect(tight[1]).toEqual(plain[1]);
  });

  it('turns a budget on whole-model time into one on the sum of blocks where a power law relates them', () => {
    const space = loadSearchSpace(join(ROOT, 'search-spaces/puzzle.json'), ck.config);
    const law = { coefficient: 0.3, exponent: 0.85 };
    const bent: CostModel = { ...costs, whole: (sum) => wholeTime(law, sum), sumWithin: (seconds) => sumWithin(law, seconds) };
    const [budget] = formulate(ck.config, space, library.scores(), profile, bent, { speedup: 2 }, 'kl').problem.budgets;
    const parentWhole = architectureCost(ck.config, parentArchitecture(ck.config), profile, bent)[0].totalSeconds;
    // A child whose blocks sum to the limit takes half the parent's whole-model time.
    expect(wholeSeconds(law, budget.limit)).toBeCloseTo(parentWhole / 2, 12);
    expect(budget.name).toMatch(/^time in scenario "single-prompt" \(a whole model of [\d.]+ ms is one whose blocks sum to [\d.]+ ms\)$/);
  });

  it('finds a child within budget, refines it with Tabu, and writes a spec that interoperates as DeciLM block_configs', async () => {
    const [s] = await solve(built, { ...solveDefaults, budget: { speedup: 1.5 } });
    const parent = architectureCost(ck.config, parentArchitecture(ck.config), profile, costs);
    const child = architectureCost(ck.config, s.architecture, profile, costs);
    for (const [k, c] of child.entries()) expect(parent[k].totalSeconds / c.totalSeconds).toBeGreaterThanOrEqual(1.5 - 1e-9);
    expect(s.spec.quality.kl).toBeLessThanOrEqual(s.spec.search.start!.kl);
    const spec = JSON.parse(readFileSync(join(s.dir, 'spec.json'), 'utf8'));
    expect(fromDeciBlockConfigs('spec.json', ck.config, spec.block_configs)).toEqual(s.architecture);
    expect(spec.quality.kl).toBe(s.spec.quality.kl);
    expect(spec.search.solver).toMatchObject({ backend: 'highs', status: 'optimal', gap: 0 });
    expect(spec.predicted[0].speedup).toBeGreaterThanOrEqual(1.5 - 1e-9);
    expect(s.id).toBe('speedup1.5-mip-tabu-cpu-local-1');
  });

  it('--runtime: a space with no block a runtime runs is refused by rule; export refuses, in one line, a child that breaks its target', async () => {
    // stories260K's hidden size of 64 makes every DeciLM ffn_mult width a multiple of 256, wider than its FFN; vLLM
    // computes no linear FFN and needs layer 0's attention: its children keep attention at layer 0 and drop every FFN.
    const [v] = await solve(built, { ...solveDefaults, budget: { paramsRatio: 0.6 }, target: 'vllm', tabuIterations: 2 });
    expect(v.id).toBe('params0.6x-mip-tabu-cpu-local-vllm-1');
    expect(v.spec.request.target).toBe('vllm');
    expect(architectureViolations(ck.config, runtimeTarget('vllm'), v.architecture)).toEqual([]);
    expect(v.architecture[0].attention.kind).toBe('gqa');
    expect(v.architecture.every((b) => b.ffn.kind === 'noop')).toBe(true);
    // llama.cpp (through GGUF, any width): attention at layer 0, an FFN at the last layer, a no-op FFN only beside a no-op attention.
    const [l] = await solve(built, { ...solveDefaults, budget: { paramsRatio: 0.6 }, target: 'llama.cpp', tabuIterations: 2 });
    expect(l.id).toBe('params0.6x-mip-tabu-cpu-local-llama.cpp-1');
    expect(architectureViolations(ck.config, runtimeTarget('llama.cpp'), l.architecture)).toEqual([]);
    expect(l.architecture.every((b) => b.ffn.kind !== 'linear' && (b.ffn.kind !== 'noop' || b.attention.kind === 'noop'))).toBe(true);
    expect(l.architecture[0].attention.kind).not.toBe('noop');
    expect(l.architecture[4].ffn.kind).not.toBe('noop');
    const [s] = await solve(built, { ...solveDefaults, budget: { paramsRatio: 0.6 }, tabuIterations: 0 });
    expect(s.spec.request.target).toBeUndefined();
    expect(() => exportSolution(built, s.id, { target: 'hf' })).toThrow(/spec\.json: does not run in hf: layer 0: FFN width \d+ is not a DeciLM ffn_mult width.*; solve again with --runtime hf$/);
    expect(existsSync(built.paths.child(s.id))).toBe(false);
    // A spec solved for a runtime is checked against it: here one edited to drop layer 0's attention.
    const spec = JSON.parse(readFileSync(join(s.dir, 'spec.json'), 'utf8'));
    spec.request.target = 'llama.cpp';
    spec.block_configs[0].attention = { n_heads_in_group: null, no_op: true, replace_with_linear: false };
    mkdirSync(built.paths.solution('edited'), { recursive: true });
    writeFileSync(built.paths.spec('edited'), JSON.stringify(spec));
    expect(() => exportSolution(built, 'edited')).toThrow(/does not run in llama\.cpp: layer 0: llama\.cpp needs layer 0's attention/);
    expect(existsSync(built.paths.child('edited'))).toBe(false);
    expect(solutionId({ paramsRatio: 0.6 }, 'mip-tabu', 'cpu', 1, 'llama.cpp')).toBe('params0.6x-mip-tabu-cpu-llama.cpp-1');
  });

  it('finds diverse solutions and re-solves a new budget on the same library', async () => {
    const sols = await solve(built, { ...solveDefaults, budget: { paramsRatio: 0.7 }, solutions: 3, diversity: 2, tabuIterations: 0 });
    expect(sols).toHaveLength(3);
    const diff = (a: readonly BlockConfig[], b: readonly BlockConfig[]) => a.filter((x, i) => JSON.stringify(x) !== JSON.stringify(b[i])).length;
    expect(diff(sols[0].architecture, sols[1].architecture)).toBeGreaterThanOrEqual(2);
    expect(diff(sols[2].architecture, sols[0].architecture)).toBeGreaterThanOrEqual(2);
    expect(diff(sols[2].architecture, sols[1].architecture)).toBeGreaterThanOrEqual(2);
    for (const s of sols) expect(s.spec.params).toBeLessThanOrEqual(0.7 * s.spec.parent.params);
    expect(sols[1].spec.quality.additive).toBeGreaterThanOrEqual(sols[0].spec.quality.additive - 1e-12);
  });

  it('keeps diverse solutions distinct after Tabu search moves each of them', async () => {
    const sols = await solve(built, { ...solveDefaults, budget: { paramsRatio: 0.75 }, solutions: 2, diversity: 2, tabuIterations: 8 });
    expect(sols).toHaveLength(2);
    const diff = sols[0].architecture.filter((x, i) => JSON.stringify(x) !== JSON.stringify(sols[1].architecture[i])).length;
    expect(diff).toBeGreaterThanOrEqual(2);
  });

  it('stops Tabu search by count unless a time limit is asked for, and records the profile by absolute path and hash', async () => {
    const relativeProfile = relative(process.cwd(), CPU);
    const [s] = await solve(built, { ...solveDefaults, hardware: relativeProfile, budget: { paramsRatio: 0.72 }, tabuIterations: 4 });
    expect(s.spec.search.tabu?.stoppedBy).not.toBe('time');
    expect(s.spec.request.tabuSeconds ?? null).toBeNull();
    expect(s.spec.hardware.file).toBe(CPU);
    expect(s.spec.request.profile).toEqual({ file: CPU, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it('reads a solved request back instead of solving it again, and solves again when the request changes', async () => {
    const [a] = await solve(built, { ...solveDefaults, budget: { paramsRatio: 0.8 }, tabuIterations: 0 });
    const written = statSync(join(a.dir, 'spec.json')).mtimeMs;
    const [b] = await solve(Run.open(run), { ...solveDefaults, budget: { paramsRatio: 0.8 }, tabuIterations: 0 });
    expect(b.reused).toBe(true);
    expect(b.spec).toEqual(a.spec);
    expect(statSync(join(a.dir, 'spec.json')).mtimeMs).toBe(written);
    const [c] = await solve(built, { ...solveDefaults, budget: { paramsRatio: 0.8 }, tabuIterations: 2 });
    expect(c.reused).toBe(false);
    expect(c.spec.request.tabuIterations).toBe(2);
  });

  it('offers every strategy through one interface; each child meets the budget or the strategy says it cannot', async () => {
    for (const strategy of STRATEGIES) {
      const o = { ...solveDefaults, strategy: strategy.name, budget: { paramsRatio: 0.8 }, tabuIterations: 2 };
      try {
        const [s] = await solve(built, o);
        expect(s.id).toBe(`params0.8x-${strategy.name}-cpu-local-1`);
        expect(s.spec.params, strategy.name).toBeLessThanOrEqual(0.8 * s.spec.parent.params);
        expect(s.spec.request.strategy).toBe(strategy.name);
      } catch (e) {
        expect((e as Error).message, strategy.name).toMatch(new RegExp(`^${strategy.name} finds no architecture within the budgets on cpu-local`));
        expect(['uniform-kv-heads']).toContain(strategy.name);
      }
    }
  });

  it('says what a directory is when it is not a run directory', () => {
    const cli = (dir: string) => spawnSync(process.execPath, [join(ROOT, 'bin/tessera.js'), 'solve', '--run', dir, '--speedup', '2'], { encoding: 'utf8' });
    expect(cli(modelDir('stories260K')).stderr).toMatch(/stories260K: a model directory, not a run directory \(no library\/manifest\.json\); a run directory is what `tessera score --out` or `tessera search --out` builds\n$/);
    expect(cli(join(root, 'nowhere')).stderr).toMatch(/nowhere: no such run directory; build one with `tessera score --out/);
  });

  it('answers an impossible budget with the constraint that cannot be met, through the CLI', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/tessera.js'), 'solve', '--run', run, '--hardware', CPU, '--params', '1000'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no architecture in puzzle meets the budgets on cpu-local:\nthis budget cannot be met by any architecture in the space\n {2}parameters: limit 0\.001000 M params, best reachable 0\.03283 M params — cannot be met/);
  });
});

describe('Tabu in a whole-layer-dropping space', () => {
  it('drops and restores whole layers when the space ties attention and FFN no-ops together', () => {
    const keep: BlockConfig = { attention: { kind: 'gqa', kvHeads: 2 }, ffn: { kind: 'swiglu', intermediate: 8 } };
    const drop: BlockConfig = { attention: { kind: 'noop' }, ffn: { kind: 'noop' } };
    const blocks = [[keep, drop], [keep, drop], [keep, drop]];
    const p: ChoiceProblem = { layers: blocks.map(() => ({ options: [{ objective: 0, usage: [2] }, { objective: 1, usage: [0] }] })), budgets: [{ name: 'time', limit: 4, fixed: 0, unit: 's', scale: 1 }] };
    const moves = neighbours(p, blocks, [0, 0, 1]);
    expect(moves.filter((m) => m.kind === 'block').map((m) => m.changes)).toEqual([[[0, 1]], [[1, 1]]]);
    expect(moves.some((m) => m.kind === 'exchange' && m.changes[0][0] === 2)).toBe(true);
  });
});
