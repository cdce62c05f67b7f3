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
import { measureModel, measureSubBlocks } from './measure.js';
import { calibrated, calibrationOf, type ScenarioCalibration } from './calibrate.js';
import { parentArchitecture } from '../arch/config.js';
import type { Architecture, BlockConfig } from '../arch/variant.js';
import { attentionParams, ffnParams } from '../arch/params.js';
import { attentionKey, ffnKey } from '../arch/variants/registry.js';
import { randomWeights } from '../model/random.js';
import { Rng } from '../util/rng.js';
import type { MeasuredCosts, ScenarioTime } from './types.js';

export interface ProfileOptions {
  readonly runtime: Runtime;
  /** Timed runs per measurement (the median is kept). */
  readonly repeats: number;
  /** Whole models timed to calibrate the sum of sub-blocks (the parent and random architectures of the space). */
  readonly calibrationModels?: number;
  readonly reporter?: Reporter;
}

/** The parent, the smallest child and three seeded random architectures of the space: the line spans what a search picks from. */
export const CALIBRATION_MODELS = 5;

/**
 * The parent's architecture, the space's smallest (each layer its block of fewest parameters: the most-cut children a
 * search reaches at high speed-ups lie there, beyond random architectures) and `count − 2` seeded random ones.
 */
export function calibrationArchitectures(config: ModelConfig, space: SearchSpace, count: number): Architecture[] {
  const rng = new Rng(0xca11b);
  const params = (b: BlockConfig) => attentionParams(config, b.attention) + ffnParams(config, b.ffn);
  const smallest = space.layers.map((l) => l.blocks.reduce((a, b) => (params(b) < params(a) ? b : a)));
  const random = Array.from({ length: Math.max(0, count - 2) }, () => space.layers.map((l) => l.blocks[rng.int(l.blocks.length)]));
  return [parentArchitecture(config), smallest, ...random].slice(0, count);
}

/** What the measured times add up to for an architecture: the rest and every layer's attention and FFN. */
export function blockSum(times: Readonly<Record<string, ScenarioTime>>, arch: Architecture): ScenarioTime {
  let prefillSeconds = times.rest.prefillSeconds;
  let decodeSeconds = times.rest.decodeSeconds;
  for (const b of arch) {
    for (const t of [times[attentionKey(b.attention)], times[ffnKey(b.ffn)]]) {
      prefillSeconds += t.prefillSeconds;
      decodeSeconds += t.decodeSeconds;
    }
  }
  return { prefillSeconds, decodeSeconds };
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
  const wholes = calibrationArchitectures(config, space, o.calibrationModels ?? CALIBRATION_MODELS);
  for (const s of profile.workload.scenarios) {
    const t = await measureSubBlocks(config, variants, s, { runtime: o.runtime, repeats: o.repeats, warmup: 2 }, reporter.progress(`profile ${s.name}`));
    const raw = { ...Object.fromEntries(t.attention), ...Object.fromEntries(t.ffn), rest: t.rest };
    // Whole models of a few architectures, to fit what the sum of blocks alone misses.
    const tick = reporter.progress(`calibrate ${s.name} on whole models`);
    const points = [];
    for (const [k, arch] of wholes.entries()) {
      tick(k, wholes.length);
      const measured = await measureModel(config, randomWeights(config, arch, new Rng(0xca1 + k)), arch, s, { runtime: o.runtime, repeats: o.repeats, warmup: 2 });
      points.push({ predicted: blockSum(raw, arch), measured });
    }
    tick(wholes.length, wholes.length);
    calibration[s.name] = calibrationOf(points);
    scenarios[s.name] = calibrated(raw, calibration[s.name]);
  }
  const measured: MeasuredCosts = {
    model: { dir: model.dir, hiddenSize: config.hiddenSize, numHeads: config.numHeads, headDim: config.headDim, vocabSize: config.vocabSize },
    threads: o.runtime.threads,
    repeats: o.repeats,
    scenarios,
    calibration,
  };
  const description = `Measured with onnxruntime by \`tessera profile\` on ${new Date().toISOString().slice(0, 10)} (${cpus()[0]?.model ?? 'unknown CPU'}, ${o.runtime.threads} threads): ` +
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
