/**
 * bench:fits — how each kind of calibration fit prices the children the speed benches measured, timing nothing.
 *
 * Every child that `npm run bench:speed` (its children and shape parts) and `npm run bench:baselines` timed against its
 * parent is priced again from the raw timings its measured profile keeps (sub-block times as measured, and the whole
 * models' points), by each kind of fit alone — the line, the power law, the power law with an offset — and by the one
 * `calibrationFit` keeps, and its predicted speed-up set against the measured one. Children priced by the roofline in
 * bench:baselines count too: their measured speed-ups are as good a test of a measured profile as any, and they are
 * made differently (wider, fewer no-ops). Needs both benches' caches under results/ (they are not in the repository);
 * run them first. Writes results/bench-fits.{json,md}.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { betweenEnds, calibrated, calibrationFit, calibrationOf, fitOffsetPowerLaw, fitPowerLaw, looSummary, refined, timeOf, type CalibrationPoint, type ScenarioCalibration } from '../src/hardware/calibrate.js';
import { loadHardwareProfile } from '../src/hardware/load.js';
import { wholeSeconds, type PowerLaw } from '../src/hardware/power-law.js';
import { totalSeconds, type HardwareProfile, type ScenarioTime } from '../src/hardware/types.js';
import { solutionId } from '../src/search/solve.js';
import { writeFileAtomic } from '../src/util/atomic.js';
import { table } from '../src/util/format.js';
import { PROJECT_ROOT } from '../src/util/project.js';
import { BASELINE_METHODS, machine, median, writeResult, type BaselineMethod } from './support.js';

/** Ridge strengths of the refinement compared, from near the measured times to near a free fit (calibrationFit's until it dropped refinements). */
const REFINEMENT_LAMBDAS = [10, 3, 1, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001];

type Counts = Readonly<Record<string, number>>;
/** A measured child: what it is made of, the profile that prices it, and its measured speed-up in one scenario. */
interface Case {
  readonly bench: string;
  readonly model: string;
  readonly scenario: string;
  readonly profile: string;
  readonly counts: Counts;
  readonly measured: number;
}

const results = (...path: string[]) => join(PROJECT_ROOT, 'results', ...path);
const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

/** How many layers take each variant (and "rest": once), from a spec's architecture of variant keys. */
function countsOfSpec(path: string): Counts {
  const counts: Record<string, number> = { rest: 1 };
  for (const block of readJson(path).architecture as { attention: string; ffn: string }[]) {
    for (const key of [block.attention, block.ffn]) counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** bench:speed's children: the shared models' from their solutions, the shape's from the counts its rows name. */
function speedCases(): Case[] {
  const path = results('bench-speed.json');
  if (!existsSync(path)) return [];
  return (readJson(path).children as { model: string; child: string; scenario: string; measured: { estimate: number } }[]).map((r) => {
    const shape = r.model.endsWith(' shape');
    const dir = results('speed', shape ? r.model.replace(/ shape$/, '-shape') : r.model);
    const counts = shape
      ? { rest: 1, ...Object.fromEntries(r.child.split(', ').map((part) => { const [key, n] = part.split(' ×'); return [key, Number(n)]; })) }
      : countsOfSpec(join(dir, 'solutions', r.child, 'spec.json'));
    return { bench: 'bench:speed', model: r.model, scenario: r.scenario, profile: join(dir, 'measured', 'cpu-local.json'), counts, measured: r.measured.estimate };
  });
}

/** bench:baselines' children of both pricings, each priced by its model's measured profile. */
function baselineCases(): Case[] {
  const path = results('baselines.json');
  if (!existsSync(path)) return [];
  type Row = { model: string; costs: string; budget: number; method: BaselineMethod; reached: boolean; scenarios?: { scenario: string; measured: { estimate: number } }[] };
  return (readJson(path).rows as Row[]).filter((r) => r.reached && r.scenarios !== undefined).flatMap((r) => {
    const dir = results('baselines', r.model);
    const id = solutionId({ speedup: r.budget }, BASELINE_METHODS[r.method], r.costs.startsWith('measured') ? 'measured-cpu-local' : 'cpu-local', 1);
    const counts = countsOfSpec(join(dir, 'solutions', id, 'spec.json'));
    return r.scenarios!.map((s) => ({ bench: 'bench:baselines', model: r.model, scenario: s.scenario, profile: join(dir, 'measured', 'cpu-local.json'), counts, measured: s.measured.estimate }));
  });
}

/** A fit of raw sub-block times and whole-model points: a model's whole time from what it is made of. */
type Fit = (raw: Readonly<Record<string, ScenarioTime>>, points: readonly CalibrationPoint[]) => ((counts: Counts) => number) | null;

const ofLaw = (fitLaw: (sums: number[], wholes: number[]) => PowerLaw | null): Fit => (raw, points) => {
  const law = fitLaw(points.map((p) => totalSeconds(p.predicted)), points.map((p) => totalSeconds(p.measured)));
  return law === null ? null : (counts) => wholeSeconds(law, totalSeconds(timeOf(raw, counts)));
};

const FITS: Readonly<Record<string, Fit>> = {
  line: (raw, points) => {
    const times = calibrated(raw, calibrationOf(points));
    return (counts) => totalSeconds(timeOf(times, counts));
  },
  'power law': ofLaw(fitPowerLaw),
  'power law with an offset': ofLaw(fitOffsetPowerLaw),
  'refined (firmest within a standard error of the best)': (raw, points) => {
    // As calibrationFit chose refinements until they were dropped: leave-one-out between the ends at each strength.
    const line = (pts: readonly CalibrationPoint[]) => calibrated(raw, calibrationOf(pts));
    const refinedBy = (pts: readonly CalibrationPoint[], lambda: number) => refined(line(pts), pts.map((p) => ({ counts: p.counts!, measured: p.measured })), lambda);
    const judged = REFINEMENT_LAMBDAS.map((lambda) => ({ lambda, ...looSummary(betweenEnds(points).map((i) => {
      const others = points.filter((_, j) => j !== i);
      return totalSeconds(timeOf(refinedBy(others, lambda), points[i].counts!)) / totalSeconds(points[i].measured) - 1;
    })) }));
    const best = judged.reduce((x, f) => (f.error < x.error ? f : x));
    const times = refinedBy(points, judged.find((f) => f.error <= best.error + best.standardError)!.lambda);
    return (counts) => totalSeconds(timeOf(times, counts));
  },
};
const KEPT = 'kept (calibrationFit)';
const FIT_ORDER = [...Object.keys(FITS), KEPT];

/** A profile scenario's prices by every fit, its parent's counts, and what calibrationFit kept: fitted once, used for each of its children. */
interface Priced {
  readonly parent: Counts;
  readonly prices: readonly [string, (counts: Counts) => number][];
  readonly kept: string;
}

function pricedBy(file: string, scenario: string, calibration: ScenarioCalibration | undefined): Priced {
  const raw = calibration?.raw;
  if (calibration === undefined || raw === undefined) throw new Error(`${file}: no raw timings for "${scenario}" (measured before profiles kept them): profile it again`);
  const { points } = calibration;
  const kept = calibrationFit(raw, points);
  const law = kept.calibration.power;
  const keptPrice = law === undefined ? (counts: Counts) => totalSeconds(timeOf(kept.times, counts)) : (counts: Counts) => wholeSeconds(law, totalSeconds(timeOf(raw, counts)));
  const prices = Object.entries(FITS).flatMap(([name, fit]): [string, (counts: Counts) => number][] => {
    const price = fit(raw, points);
    return price === null ? [] : [[name, price]];
  });
  const keptName = law === undefined ? 'line' : law.offset === undefined ? 'power law' : 'power law with an offset';
  return {
    // The parent is the first model a profile times for its calibration (profile.ts).
    parent: points[0].counts!,
    prices: [...prices, [KEPT, keptPrice]],
    kept: `${file.replace(`${PROJECT_ROOT}/`, '')} ${scenario}: ${keptName} (leave-one-out ${(100 * kept.calibration.refinement!.error).toFixed(1)}%)`,
  };
}

/** Signed relative misses of predicted speed-ups (+: predicted faster than measured), per fit and scenario. */
const misses = new Map<string, number[]>();
const priced = new Map<string, Priced>();
const profiles = new Map<string, HardwareProfile>();
const cases = [...speedCases(), ...baselineCases()];
if (cases.length === 0) throw new Error('no measured children: run `npm run bench:speed` and `npm run bench:baselines` first');
for (const c of cases) {
  const where = `${c.profile}|${c.scenario}`;
  let p = priced.get(where);
  if (p === undefined) {
    if (!profiles.has(c.profile)) profiles.set(c.profile, loadHardwareProfile(c.profile));
    priced.set(where, (p = pricedBy(c.profile, c.scenario, profiles.get(c.profile)!.measured?.calibration?.[c.scenario])));
  }
  for (const [name, price] of p.prices) {
    for (const key of [`${name}|${c.scenario}`, `${name}|all`]) {
      if (!misses.has(key)) misses.set(key, []);
      misses.get(key)!.push(price(p.parent) / price(c.counts) / c.measured - 1);
    }
  }
}
const kept = [...priced.values()].map((p) => p.kept);

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const rows = [...misses].map(([key, m]) => {
  const [fit, scenario] = key.split('|');
  const abs = m.map(Math.abs);
  return { fit, scenario, children: m.length, medianMiss: median(abs), meanSignedMiss: m.reduce((a, x) => a + x, 0) / m.length, worstMiss: Math.max(...abs) };
}).sort((a, b) => a.scenario.localeCompare(b.scenario) || FIT_ORDER.indexOf(a.fit) - FIT_ORDER.indexOf(b.fit));
writeResult('bench-fits.json', { what: 'predicted against measured speed-ups of every measured child, priced again by each kind of calibration fit from its profile\'s raw timings', machine: machine(), kept, rows });
const md = [
  '# bench:fits — calibration fits against measured children', '',
  `Every child timed by \`npm run bench:speed\` and \`npm run bench:baselines\` (${cases.length} child-scenarios), priced again from its measured profile's raw timings by each kind of fit, its predicted speed-up against the measured one (miss: predicted / measured − 1, + where predicted faster). Nothing is timed here. Command: \`npm run bench:fits\`.`, '',
  table(['fit', 'scenario', 'child-scenarios', 'median |miss|', 'mean miss', 'worst |miss|'], rows.map((r) => [r.fit, r.scenario, String(r.children), pct(r.medianMiss), pct(r.meanSignedMiss), pct(r.worstMiss)])), '',
  'Kept by `calibrationFit` per profile and scenario:', '', ...kept.map((k) => `- ${k}`), '',
];
writeFileAtomic(results('bench-fits.md'), md.join('\n'));
process.stdout.write(`${md.join('\n')}\nwrote results/bench-fits.json and results/bench-fits.md\n`);
