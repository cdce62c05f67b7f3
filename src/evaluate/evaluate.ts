import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { childFiles } from '../run/paths.js';
import { takeWindows, type TextRange, type WindowSet } from '../data/sequences.js';
import { paragraphs, readText } from '../data/text.js';
import { readProvenance } from '../export/provenance.js';
import { costModelFor } from '../hardware/cost-model.js';
import { loadHardwareProfile } from '../hardware/load.js';
import { parentDrift } from '../hardware/drift.js';
import { describeSpeedup, withinNoise, type SpeedupInterval } from '../hardware/interval.js';
import { compareModels, type Comparison, type ProtocolOptions } from '../hardware/measure.js';
import { steadyTiming, type RetimeOptions } from '../hardware/steady.js';
import { architectureCost } from '../hardware/model-cost.js';
import { distributionOn, modelDivergence, referenceNll } from '../lm/divergence.js';
import { generationOptions, greedyGenerate } from '../lm/generate.js';
import { openCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { loadTokenizer } from '../model/tokenizer.js';
import type { ExecutionProvider, Runtime } from '../onnx/runtime.js';
import { StagedDecoder } from '../onnx/staged.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { fail } from '../util/errors.js';
import { DEFAULT_HARDWARE } from '../util/project.js';
import { silent, type Reporter } from '../util/reporter.js';
import { totalSeconds } from '../hardware/types.js';

export interface EvaluateOptions {
  readonly data: string;
  readonly tokens: number;
  readonly seqLen: number;
  readonly prompts: number;
  readonly promptTokens: number;
  readonly generateTokens: number;
  /** Time the profile's scenarios, parent and child in interleaved rounds until the speed-up is known (see `ProtocolOptions`); null for quality alone. */
  readonly timing: ({
    readonly hardware: string;
    /** Where the timings run (default: `runtime`). */
    readonly runtime?: Runtime;
    /** Time a scenario again while its parent runs slower than a measured profile predicts (`steadyTiming`; default: never). */
    readonly retime?: Omit<RetimeOptions, 'onRetry'>;
  } & Omit<ProtocolOptions, 'runtime'>) | null;
  /** Further children whose seen text is skipped too (to compare a child before and after distillation on the same text). */
  readonly alsoUnseenBy?: readonly string[];
  /** Write evaluation.json into the child directory (default: yes). */
  readonly record?: boolean;
  readonly runtime: Runtime;
  readonly reporter?: Reporter;
}

export interface ScenarioComparison {
  readonly scenario: string;
  readonly parentSeconds: { readonly prefill: number; readonly decode: number; readonly total: number };
  readonly childSeconds: { readonly prefill: number; readonly decode: number; readonly total: number };
  /** The speed-up's estimate (the median of the rounds' ratios): `interval.estimate`. */
  readonly measuredSpeedup: number;
  /** Its 95% interval over the timed rounds; `withinNoise` when it holds 1. */
  readonly interval: SpeedupInterval;
  readonly withinNoise: boolean;
  /** The speed-up as said: "×1.52 (95%: 1.45–1.60, 12 rounds)" or "within noise: …". */
  readonly said: string;
  readonly predictedSpeedup: number;
  /** The profile's prediction of the parent's total time. */
  readonly predictedParentSeconds: number;
  /** The parent's measured total over `predictedParentSeconds` where the profile is a measurement of this machine, else null (see `parentDrift`). */
  readonly machineDrift: number | null;
  /** Timed again (`retime`): each earlier timing's `machineDrift`, which ran slow; absent when timed once. */
  readonly earlierDrifts?: readonly number[];
}

/** A child against its parent on text the search never saw; `tessera evaluate` writes it as evaluation.json. */
export interface Evaluation {
  readonly child: string;
  readonly parent: string;
  readonly text: TextRange & { readonly note: string };
  readonly kl: number;
  readonly perplexity: { readonly parent: number; readonly child: number };
  readonly greedyAgreement: { readonly prompts: number; readonly tokens: number; readonly share: number };
  readonly hardware: string | null;
  /** The timed profile's name (null without timing). */
  readonly hardwareName: string | null;
  /** The onnxruntime execution provider the latencies were timed on (null without timing). */
  readonly provider: ExecutionProvider | null;
  readonly latency: readonly ScenarioComparison[];
  readonly skippedScenarios: readonly string[];
}

/**
 * Paragraph index from which the text is new to each of these children: after the text their search used
 * for calibration and validation, and the text a distilled one trained on. Comparing a child before and
 * after distillation, both are evaluated from the later start, on the same text.
 */
function unseenStart(childDirs: readonly string[], data: string): { start: number; note: string } {
  let start = 0;
  const notes: string[] = [];
  for (const dir of childDirs) {
    const p = readProvenance(dir);
    if (p === null) {
      notes.push(`${dir} has no provenance (tessera.json)`);
      continue;
    }
    const usedFile = resolve(p.data.validation.file);
    if (usedFile !== resolve(data)) {
      notes.push(`the search used ${usedFile}, another file`);
      continue;
    }
    start = Math.max(start, p.data.calibration.paragraphs[1], p.data.validation.paragraphs[1]);
  }
  return { start, note: `paragraphs from ${start} on: after the text the search${childDirs.some((d) => readProvenance(d)?.distillation) ? ' and the distillation' : ''} used${notes.length > 0 ? `; ${notes.join('; ')}` : ''}` };
}

/** Greedy continuations of each prompt by one model (its decoder built once, released after). */
async function greedyContinuations(ck: Checkpoint, prompts: number[][], tokens: number, runtime: Runtime): Promise<number[][]> {
  const decoder = await StagedDecoder.create(ck.config, ck.source, generationOptions(ck.config), runtime);
  try {
    const out: number[][] = [];
    for (const prompt of prompts) out.push(await greedyGenerate(decoder, prompt, Math.min(prompt.length + tokens, ck.config.maxPositions), [], ck.architecture));
    return out;
  } finally {
    await decoder.release();
  }
}

/** The share of generated tokens on which the child's greedy continuation agrees with the parent's; one model in memory at a time. */
async function greedyAgreement(parent: Checkpoint, child: Checkpoint, prompts: number[][], tokens: number, runtime: Runtime) {
  const a = await greedyContinuations(parent, prompts, tokens, runtime);
  const b = await greedyContinuations(child, prompts, tokens, runtime);
  let same = 0;
  let total = 0;
  prompts.forEach((prompt, k) => {
    for (let t = prompt.length; t < a[k].length; t++) {
      total++;
      if (a[k][t] === b[k][t]) same++;
    }
  });
  return { prompts: prompts.length, tokens: total, share: total > 0 ? same / total : NaN };
}

/**
 * The child's KL and NLL against the parent's distribution on `windows`. A function of its own so that the
 * distribution (tokens × vocabulary floats: half a gigabyte at 1B for 1024 tokens) is garbage once it returns,
 * not held through greedy generation and timing, which each build a whole model.
 */
async function qualityOn(parent: Checkpoint, child: Checkpoint, windows: WindowSet, seqLen: number, runtime: Runtime) {
  const reference = await distributionOn(parent.config, parent.source, windows, seqLen, runtime);
  return { quality: await modelDivergence(child.config, child.source, windows.ids, reference, runtime), parentNll: referenceNll(reference) };
}

/**
 * The evaluate stage: an exported child against its parent on text the search never saw — KL, perplexity of
 * both, greedy-generation agreement — and, with `timing`, real onnxruntime latency per scenario beside the
 * cost model's prediction; written to the child's evaluation.json.
 */
export async function evaluateChild(childDir: string, parent: Checkpoint, o: EvaluateOptions): Promise<Evaluation> {
  const reporter = o.reporter ?? silent;
  const child = openCheckpoint(childDir);
  if (child.config.vocabSize !== parent.config.vocabSize || child.config.hiddenSize !== parent.config.hiddenSize) {
    fail(`${childDir}: is not a child of ${parent.dir} (hidden ${child.config.hiddenSize} vs ${parent.config.hiddenSize}, vocab ${child.config.vocabSize} vs ${parent.config.vocabSize})`);
  }
  const seqLen = Math.min(o.seqLen, parent.config.maxPositions);
  const docs = paragraphs(readText(o.data));
  const { start, note } = unseenStart([childDir, ...(o.alsoUnseenBy ?? [])], o.data);
  const tokenizer = loadTokenizer(parent.dir);
  const windows = takeWindows(tokenizer, docs, start, o.data, seqLen, o.tokens);
  if (windows.count === 0) fail(`${o.data}: no unseen text left after paragraph ${start} for a window of ${seqLen} tokens`);

  reporter.stage(`quality on ${windows.range.tokens} unseen tokens (${note})`);
  const { quality, parentNll } = await qualityOn(parent, child, windows, seqLen, o.runtime);

  let agreement = { prompts: 0, tokens: 0, share: NaN };
  if (o.prompts > 0) {
    reporter.stage(`greedy generation from ${o.prompts} prompts of ${o.promptTokens} tokens, ${o.generateTokens} new tokens each`);
    const later = takeWindows(tokenizer, docs, windows.range.paragraphs[1], o.data, o.promptTokens, o.prompts * o.promptTokens);
    const prompts = Array.from({ length: later.count }, (_, k) => Array.from(later.ids.subarray(k * o.promptTokens, (k + 1) * o.promptTokens)));
    agreement = await greedyAgreement(parent, child, prompts, o.generateTokens, o.runtime);
  }

  const latency: ScenarioComparison[] = [];
  const skipped: string[] = [];
  const profile = o.timing === null ? null : loadHardwareProfile(o.timing.hardware);
  if (o.timing !== null && profile !== null) {
    const costs = costModelFor(parent.config, profile);
    const predictedChild = architectureCost(parent.config, child.architecture, profile, costs);
    const predictedParent = architectureCost(parent.config, parent.architecture, profile, costs);
    for (const [k, s] of profile.workload.scenarios.entries()) {
      if (s.prefillTokens + s.generatedTokens > parent.config.maxPositions) {
        skipped.push(`${s.name} (${s.prefillTokens}+${s.generatedTokens} tokens exceed the model's ${parent.config.maxPositions} positions)`);
        continue;
      }
      reporter.stage(`timing scenario ${s.name} (batch ${s.batch}, ${s.prefillTokens}+${s.generatedTokens} tokens), parent and child`);
      const { hardware: _, runtime = o.runtime, retime, ...protocol } = o.timing;
      const wait = { attempts: 1, pauseSeconds: 0, ...retime };
      const driftOf = (c: Comparison) => parentDrift(profile, runtime.spec, totalSeconds(c.medians[0]), predictedParent[k].totalSeconds);
      const timed = await steadyTiming(() => compareModels([
        { config: parent.config, weights: parent.source, arch: parent.architecture },
        { config: child.config, weights: child.source, arch: child.architecture },
      ], s, { runtime, ...protocol }), (c) => [driftOf(c)], {
        ...wait,
        onRetry: ([drift]) => reporter.stage(`${s.name}: the parent ran ×${drift!.toFixed(2)} slower than ${profile.name} predicts for it (a busy spell?); timing again in ${wait.pauseSeconds} s`),
      });
      const { medians: [p, c], speedups: [interval] } = timed.result;
      const secs = (t: { prefillSeconds: number; decodeSeconds: number }) => ({ prefill: t.prefillSeconds, decode: t.decodeSeconds, total: totalSeconds(t) });
      latency.push({
        scenario: s.name,
        parentSeconds: secs(p),
        childSeconds: secs(c),
        measuredSpeedup: interval.estimate,
        interval,
        withinNoise: withinNoise(interval),
        said: describeSpeedup(interval),
        predictedSpeedup: predictedParent[k].totalSeconds / predictedChild[k].totalSeconds,
        predictedParentSeconds: predictedParent[k].totalSeconds,
        machineDrift: driftOf(timed.result),
        ...(timed.attempts.length > 1 ? { earlierDrifts: timed.attempts.slice(0, -1).map((a) => a.drifts[0]!) } : {}),
      });
    }
  }
  const evaluation: Evaluation = {
    child: resolve(childDir),
    parent: parent.dir,
    text: { ...windows.range, note },
    kl: quality.kl,
    perplexity: { parent: Math.exp(parentNll), child: Math.exp(quality.lmLoss) },
    greedyAgreement: agreement,
    hardware: o.timing === null ? null : resolve(o.timing.hardware),
    hardwareName: profile?.name ?? null,
    provider: o.timing === null ? null : (o.timing.runtime ?? o.runtime).spec.provider,
    latency,
    skippedScenarios: skipped,
  };
  if (o.record ?? true) writeJsonAtomic(childFiles.evaluation(childDir), evaluation);
  return evaluation;
}

/**
 * The profile whose scenarios `tessera evaluate` times on this machine when not told: the one the child was
 * searched for when it describes this machine (measured here, or `cpu-local`), else `cpu-local` — a GPU
 * profile's scenarios (batch 64 × 1280 tokens) run for hours on a CPU and say nothing about that GPU.
 * `note` says which was chosen and why.
 */
export function timingProfile(childDir: string, provider: ExecutionProvider = 'cpu'): { path: string; note: string } {
  const searched = readProvenance(childDir)?.hardware;
  if (searched === undefined) return { path: DEFAULT_HARDWARE, note: `timing ${DEFAULT_HARDWARE}'s scenarios on this machine (no searched profile recorded; --hardware to choose)` };
  // On the GPU, the GPU profile the child was searched for is the one its scenarios are meant for.
  if (provider === 'webgpu') return { path: searched, note: `timing on this machine's GPU (WebGPU) with the profile the child was searched for, ${searched}` };
  const profile = existsSync(searched) ? loadHardwareProfile(searched) : null;
  if (profile !== null && (profile.measured !== null || profile.name === loadHardwareProfile(DEFAULT_HARDWARE).name)) {
    return { path: searched, note: `timing on this machine with the profile the child was searched for, ${searched}` };
  }
  return {
    path: DEFAULT_HARDWARE,
    note: `timing on this machine with ${DEFAULT_HARDWARE}: the child was searched for ${profile?.name ?? searched}, not this machine (pass --hardware ${searched} to time its scenarios here anyway)`,
  };
}
