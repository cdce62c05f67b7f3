/**
 * bench:speed's states part: why two timings of one child can disagree beyond their intervals. One child is timed by
 * `tessera evaluate`'s protocol (DEFAULT_PROTOCOL) many times per scenario — `runs` times in a row in one process,
 * and once in each of `runs` fresh processes — keeping every round. Then:
 * - the runs' speed-ups and how many pairs of intervals overlap, in the one process, across the fresh ones, and all;
 * - the same among the runs whose parent ran as profiled (`parentDrift` within DRIFT_TOLERANCE);
 * - the rounds cut again into longer runs by the same rule (the one process's, and the fresh processes' one after
 *   another), each run going on until it has timed at least 10 s (or 20 s) and is precise: if the disagreement were
 *   drift within a few seconds, longer runs would overlap more.
 *
 *   (worker, spawned by the part)  tsx bench/speed-states.ts --worker <child dir> <profile> <scenario> <runs> <threads>
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { costModelFor } from '../src/hardware/cost-model.js';
import { DRIFT_TOLERANCE, hasDrifted, parentDrift } from '../src/hardware/drift.js';
import { preciseEnough, speedupInterval, type SpeedupInterval } from '../src/hardware/interval.js';
import { loadHardwareProfile } from '../src/hardware/load.js';
import { compareModels, DEFAULT_PROTOCOL, runsPerBuild } from '../src/hardware/measure.js';
import { architectureCost } from '../src/hardware/model-cost.js';
import { totalSeconds, type HardwareProfile } from '../src/hardware/types.js';
import { readProvenance } from '../src/export/provenance.js';
import { loadCheckpoint, type Checkpoint } from '../src/model/checkpoint.js';
import { cpuRuntime } from '../src/onnx/runtime.js';
import { table } from '../src/util/format.js';
import { PROJECT_ROOT } from '../src/util/project.js';
import { median } from './support.js';

/** One run of the protocol: every round's total seconds, parent and child, in the order timed. */
export interface TimedRun {
  /** Which process timed it: "one" (the process that timed every run in a row) or "fresh k". */
  readonly process: string;
  readonly scenario: string;
  readonly parent: readonly number[];
  readonly child: readonly number[];
  readonly interval: SpeedupInterval;
  /** The parent's median over the profile's prediction for it (null: the profile is not a measurement of this setting). */
  readonly drift: number | null;
}

const TSX = join(PROJECT_ROOT, 'node_modules/tsx/dist/cli.mjs');

const parentPredicted = (parent: Checkpoint, profile: HardwareProfile, k: number) => architectureCost(parent.config, parent.architecture, profile, costModelFor(parent.config, profile))[k].totalSeconds;

/** The worker: `runs` runs of the protocol in this process, one JSON line each on stdout. */
async function worker(childDir: string, profilePath: string, scenarioName: string, runs: number, threads: number): Promise<void> {
  const child = loadCheckpoint(childDir);
  const parentDir = readProvenance(childDir)?.parent;
  if (parentDir === undefined) throw new Error(`${childDir}: no tessera.json naming its parent`);
  const parent = loadCheckpoint(parentDir);
  const profile = loadHardwareProfile(profilePath);
  const k = profile.workload.scenarios.findIndex((s) => s.name === scenarioName);
  if (k < 0) throw new Error(`${profilePath}: no scenario ${scenarioName}`);
  const runtime = cpuRuntime(threads);
  const predicted = parentPredicted(parent, profile, k);
  for (let r = 0; r < runs; r++) {
    const c = await compareModels([{ config: parent.config, weights: parent.source, arch: parent.architecture }, { config: child.config, weights: child.source, arch: child.architecture }], profile.workload.scenarios[k], { ...DEFAULT_PROTOCOL, runtime });
    const drift = parentDrift(profile, runtime.spec, totalSeconds(c.medians[0]), predicted);
    process.stdout.write(`${JSON.stringify({ scenario: scenarioName, parent: c.rounds[0].map(totalSeconds), child: c.rounds[1].map(totalSeconds), interval: c.speedups[0], drift })}\n`);
  }
}

function spawned(what: string, childDir: string, profile: string, scenario: string, runs: number, threads: number): TimedRun[] {
  const out = execFileSync(process.execPath, [TSX, join(PROJECT_ROOT, 'bench/speed-states.ts'), '--worker', childDir, profile, scenario, String(runs), String(threads)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 });
  return out.trim().split('\n').map((line) => ({ process: what, ...JSON.parse(line) }));
}

/** How many pairs of the intervals overlap, of how many pairs. */
export function overlapping(intervals: readonly { low: number; high: number }[]): { overlap: number; pairs: number } {
  let overlap = 0;
  let pairs = 0;
  for (let i = 0; i < intervals.length; i++) for (let j = i + 1; j < intervals.length; j++) {
    pairs++;
    if (intervals[i].low <= intervals[j].high && intervals[j].low <= intervals[i].high) overlap++;
  }
  return { overlap, pairs };
}

/**
 * One process's rounds cut again into runs by the protocol's rule (pure): each run takes rounds until it has at least
 * `minRounds` and `minSeconds` timed and its interval is within ±`precision`, or `maxSeconds` timed; a tail too short
 * to finish is dropped. Timed seconds are each round's fastest run times the runs per build (`runsPerBuild`).
 */
export function recut(parent: readonly number[], child: readonly number[], minSeconds: number, o = { minRounds: DEFAULT_PROTOCOL.minRounds, precision: DEFAULT_PROTOCOL.precision, maxSeconds: DEFAULT_PROTOCOL.maxSeconds }): SpeedupInterval[] {
  const runs: SpeedupInterval[] = [];
  const perBuild = parent.length === 0 ? 1 : runsPerBuild(parent[0]);
  let start = 0;
  for (;;) {
    let spent = 0;
    let end = start;
    let done: SpeedupInterval | null = null;
    while (done === null && end < parent.length) {
      spent += perBuild * (parent[end] + child[end]);
      end++;
      if (end - start < o.minRounds) continue;
      const interval = speedupInterval(parent.slice(start, end), child.slice(start, end));
      if (spent >= o.maxSeconds || (spent >= minSeconds && preciseEnough(interval, o.precision))) done = interval;
    }
    if (done === null) return runs;
    runs.push(done);
    start = end;
  }
}

export interface StatesPart {
  readonly child: string;
  readonly runs: number;
  readonly timed: readonly TimedRun[];
}

/** Times the child `runs` times per scenario in one process, then once in each of `runs` fresh processes. */
export function timeStates(childDir: string, profile: string, runs: number, threads: number): StatesPart {
  const scenarios = loadHardwareProfile(profile).workload.scenarios.map((s) => s.name);
  const timed: TimedRun[] = [];
  for (const scenario of scenarios) {
    process.stderr.write(`states: ${scenario}, ${runs} runs in one process\n`);
    timed.push(...spawned('one', childDir, profile, scenario, runs, threads));
    for (let r = 0; r < runs; r++) {
      process.stderr.write(`states: ${scenario}, fresh process ${r + 1}/${runs}\n`);
      timed.push(...spawned(`fresh ${r + 1}`, childDir, profile, scenario, 1, threads));
    }
  }
  return { child: childDir, runs, timed };
}

const share = ({ overlap, pairs }: { overlap: number; pairs: number }) => (pairs === 0 ? '—' : `${overlap} of ${pairs} (${Math.round((100 * overlap) / pairs)}%)`);
const span = (xs: readonly number[], digits: number) => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;
const mean = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;

/** The part's section of bench-speed.md. */
export function statesMarkdown(part: StatesPart): string[] {
  if (part.timed.length === 0) return [];
  const scenarios = [...new Set(part.timed.map((t) => t.scenario))];
  const groups = scenarios.flatMap((scenario) => {
    const runs = part.timed.filter((t) => t.scenario === scenario);
    return [['one process', runs.filter((t) => t.process === 'one')], ['fresh processes', runs.filter((t) => t.process !== 'one')]] as const;
  }).filter(([, runs]) => runs.length > 0).map(([who, runs]) => {
    const estimates = runs.map((t) => t.interval.estimate);
    return [runs[0].scenario, who, String(runs.length), `×${mean(estimates).toFixed(2)} (${span(estimates, 2)})`, `${span(runs.map((t) => 1000 * median(t.parent)), 1)} ms`, span(runs.flatMap((t) => (t.drift === null ? [] : [t.drift])), 2), share(overlapping(runs.map((t) => t.interval)))];
  });
  const lines = scenarios.map((scenario) => {
    const runs = part.timed.filter((t) => t.scenario === scenario);
    // Each process's rounds, and the fresh processes' one after another (they ran in that order), cut into longer runs.
    const streams = [runs.filter((t) => t.process === 'one'), runs.filter((t) => t.process !== 'one')];
    const longer = (minSeconds: number) => share(overlapping(streams.flatMap((s) => recut(s.flatMap((t) => t.parent), s.flatMap((t) => t.child), minSeconds))));
    const profiled = runs.filter((t) => !hasDrifted(t.drift));
    return `- ${scenario}: all ${runs.length} runs, ${share(overlapping(runs.map((t) => t.interval)))} pairs overlapping; the ${profiled.length} whose parent ran within ${100 * DRIFT_TOLERANCE}% of its profiled time, ${share(overlapping(profiled.map((t) => t.interval)))}; the same rounds cut into runs of at least 10 s timed, ${longer(10)}, of 20 s, ${longer(20)}.`;
  });
  return [
    `## Why timings disagree: one child timed ${part.runs} times in a row in one process, then once in each of ${part.runs} fresh processes, per scenario (\`${part.child.replace(`${PROJECT_ROOT}/`, '')}\`)`, '',
    'Speed-ups: the runs\' mean (range). Parent: the runs\' median rounds. Parent vs profile: the parent\'s median over the profile\'s prediction for it. If the runs disagreed through drift within seconds, the same rounds cut into longer runs (the same rule, a minimum of timed seconds added) would overlap more.', '',
    ...table(['scenario', 'timed in', 'runs', 'speed-ups', 'parent', 'parent vs profile', 'pairs overlapping'], groups).split('\n').map((l) => `    ${l}`), '',
    ...lines, '',
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === '--worker') {
  const [childDir, profile, scenario, runs, threads] = process.argv.slice(3);
  await worker(childDir, profile, scenario, Number(runs), Number(threads));
}
