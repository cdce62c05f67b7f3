import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import type { ModelConfig } from '../arch/config.js';
import { isObject, readJsonFile } from '../model/json.js';
import type { Runtime } from '../onnx/runtime.js';
import type { Run } from '../run/run.js';
import { distinctVariants } from '../space/variants.js';
import type { SearchSpace } from '../space/types.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { fail } from '../util/errors.js';
import { silent, type Reporter } from '../util/reporter.js';
import { loadHardwareProfile } from './load.js';
import { compareModels, DEFAULT_PROTOCOL, MAX_ROUNDS, measureSubBlocks, medianTime } from './measure.js';
import { openCheckpoint } from '../model/checkpoint.js';
import { calibrationFit, describeCalibration, onParentScale, timeOf, type ScenarioCalibration } from './calibrate.js';
import { parentArchitecture } from '../arch/config.js';
import type { Architecture, BlockConfig } from '../arch/variant.js';
import { attentionParams, ffnParams } from '../arch/params.js';
import { attentionKey, ffnKey } from '../arch/variants/registry.js';
import { timingWeightPool } from '../model/random.js';
import { Rng } from '../util/rng.js';
import type { MeasuredCosts, ScenarioTime } from './types.js';

export interface ProfileOptions {
  readonly runtime: Runtime;
  /** Rounds per measurement, each over fresh builds (the median is kept). */
  readonly repeats: number;
  /** See PROFILE_SECONDS (the default). */
  readonly minSeconds?: number;
  /** Whole models timed to calibrate the sum of sub-blocks (the parent and random architectures of the space). */
  readonly calibrationModels?: number;
  readonly reporter?: Reporter;
}

/**
 * Seconds of sub-block rounds per scenario at least: small models get many rounds (their times are short and noisy),
 * large ones `repeats` (each round already takes longer). The calibration models are timed in rounds of all of them
 * for as many timed seconds at least and twice as many at most (rounds stop in between once every ratio to the parent
 * is within ±3%), and MAX_ROUNDS rounds at most.
 */
export const PROFILE_SECONDS = 30;

/**
 * The parent, the smallest child and ten seeded random architectures of the space: enough whole models for a law with
 * three numbers to be fitted and judged by leaving out each of the ten between the ends in turn (`calibrationFit`).
 */
export const CALIBRATION_MODELS = 12;

/**
 * The parent's architecture, the space's smallest (each layer its block of fewest parameters: the most-cut children a
 * search reaches at high speed-ups lie there, beyond random architectures) and `count − 2` seeded random ones, from
 * dense to sparse: the k-th of m gives each layer its smallest block with probability 2k / 3m, else one drawn
 * uniformly, so that the models span the sizes searches pick from (uniform draws alone all sit near the middle). No
 * architecture twice (a small space may have fewer than `count`).
 */
export function calibrationArchitectures(config: ModelConfig, space: SearchSpace, count: number): Architecture[] {
  const rng = new Rng(0xca11b);
  const params = (b: BlockConfig) => attentionParams(config, b.attention) + ffnParams(config, b.ffn);
  const smallest = space.layers.map((l) => l.blocks.reduce((a, b) => (params(b) < params(a) ? b : a)));
  const archs = new Map<string, Architecture>();
  for (const arch of [parentArchitecture(config), smallest]) archs.set(JSON.stringify(arch), arch);
  const m = Math.max(0, count - 2);
  for (let draw = 0; archs.size < count && draw < 100 * count; draw++) {
    const sparsity = (2 * (draw % Math.max(1, m))) / (3 * Math.max(1, m));
    const arch = space.layers.map((l, i) => (rng.next() < sparsity ? smallest[i] : l.blocks[rng.int(l.blocks.length)]));
    archs.set(JSON.stringify(arch), arch);
  }
  return [...archs.values()].slice(0, count);
}

/** How many layers of an architecture use each variant, keyed as measured times are ("rest": once). */
export function variantCounts(arch: Architecture): Record<string, number> {
  const counts: Record<string, number> = { rest: 1 };
  for (const b of arch) for (const key of [attentionKey(b.attention), ffnKey(b.ffn)]) counts[key] = (counts[key] ?? 0) + 1;
  return counts;
}

/** What the measured times add up to for an architecture: the rest and every layer's attention and FFN. */
export function blockSum(times: Readonly<Record<string, ScenarioTime>>, arch: Architecture): ScenarioTime {
  return timeOf(times, variantCounts(arch));
}

/**
 * Measures every distinct sub-block of a space with onnxruntime on this machine, for each scenario of a
 * base profile; returns the base profile's JSON with a `measured` section, which the cost model then uses
 * instead of the roofline.
 */
export async function measuredProfile(model: { dir: string; config: ModelConfig }, space: SearchSpace, base: string, name: string, o: ProfileOptions): Promise<Record<string, unknown>> {
  const reporter = o.reporter ?? silent;
  const profile = loadHardwareProfile(base);
  const baseJson = readJsonFile(base, 'hardware profile');
  if (!isObject(baseJson)) fail(`${base}: expected a JSON object`);
  const { config } = model;
  const variants = distinctVariants(space);
  const scenarios: Record<string, Record<string, ScenarioTime>> = {};
  const calibration: Record<string, ScenarioCalibration> = {};
  const wholes = calibrationArchitectures(config, space, Math.max(2, o.calibrationModels ?? CALIBRATION_MODELS));
  // Read from its files a stage at a time, never whole (a 1B parent would be 5 GB in float32); timed runs take token rows from memory.
  const parent = { config, weights: openCheckpoint(model.dir).source, arch: wholes[0] };
  const pool = timingWeightPool(config, new Rng(0xca1));
  const others = wholes.slice(1).map((arch) => ({ config, weights: pool(arch), arch }));
  const seconds = o.minSeconds ?? PROFILE_SECONDS;
  // Warmed up as `tessera evaluate` times parent and child (DEFAULT_PROTOCOL), so that the line prices what it measures.
  const protocol = { runtime: o.runtime, warmup: DEFAULT_PROTOCOL.warmup, minRounds: o.repeats, maxRounds: MAX_ROUNDS, precision: 0.03, minSeconds: seconds, maxSeconds: 2 * seconds };
  for (const s of profile.workload.scenarios) {
    const t = await measureSubBlocks(config, variants, s, { runtime: o.runtime, repeats: o.repeats, warmup: 2, minSeconds: seconds }, reporter.progress(`profile ${s.name}`));
    const raw = { ...Object.fromEntries(t.attention), ...Object.fromEntries(t.ffn), rest: t.rest };
    // Whole models of a dozen architectures, to fit what the sum of blocks alone misses: all timed in the same rounds,
    // each round every model once in alternating order, and put on the parent's scale. Timed one after another, each
    // against the parent, they sat in whatever state the machine was in at the time, and a small model's speed-up
    // moves with it (one child: ×3.45, then ×2.83 a minute later, its parent 1.6× slower): points 10–20% apart.
    const tick = reporter.progress(`calibrate ${s.name} on ${wholes.length} whole models`);
    tick(0, protocol.maxRounds);
    const c = await compareModels([parent, ...others], s, { ...protocol, onRound: (n) => tick(n, protocol.maxRounds) });
    tick(protocol.maxRounds, protocol.maxRounds);
    const parentReference = medianTime(c.rounds[0]);
    const point = (arch: Architecture, measured: ScenarioTime) => ({ predicted: blockSum(raw, arch), measured, counts: variantCounts(arch) });
    const fit = calibrationFit(raw, [point(parent.arch, parentReference), ...others.map((m, k) => point(m.arch, onParentScale(parentReference, c.rounds[0], c.rounds[k + 1])))]);
    calibration[s.name] = { ...fit.calibration, raw };
    scenarios[s.name] = fit.times;
    reporter.stage(describeCalibration(s.name, fit.calibration));
  }
  const measured: MeasuredCosts = {
    model: { dir: model.dir, hiddenSize: config.hiddenSize, numHeads: config.numHeads, headDim: config.headDim, vocabSize: config.vocabSize },
    ...(o.runtime.spec.provider !== 'cpu' ? { provider: o.runtime.spec.provider } : {}),
    threads: o.runtime.threads,
    repeats: o.repeats,
    scenarios,
    calibration,
  };
  const where = o.runtime.spec.provider === 'webgpu' ? `the GPU through onnxruntime's WebGPU provider, host ${cpus()[0]?.model ?? 'unknown CPU'}` : `${cpus()[0]?.model ?? 'unknown CPU'}, ${o.runtime.threads} threads`;
  const description = `Measured with onnxruntime by \`tessera profile\` on ${new Date().toISOString().slice(0, 10)} (${where}): ` +
    `every sub-block of ${space.name} for ${model.dir}, scenarios from ${profile.name}.`;
  reporter.stage(`measured ${variants.attention.length} attention and ${variants.ffn.length} FFN variants in ${profile.workload.scenarios.length} scenarios`);
  return { ...baseJson, name, description, measured };
}

/**
 * The profile stage of a run: the candidates of its space timed on this machine for the scenarios of `base`,
 * written to `measured/<base>.json` once and reused after. Returns the measured profile's path.
 */
export async function profileRun(run: Run, base: string, o: ProfileOptions): Promise<string> {
  const baseName = run.profile(base).name;
  const path = run.paths.measured(baseName);
  if (existsSync(path)) {
    (o.reporter ?? silent).stage(`reusing the measured profile ${path}`);
    return path;
  }
  writeJsonAtomic(path, await measuredProfile({ dir: run.manifest.parent.dir, config: run.config }, run.space(), base, `measured-${baseName}`, o));
  return path;
}
