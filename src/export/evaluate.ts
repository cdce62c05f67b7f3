import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Architecture } from '../arch/variant.js';
import { takeWindows, type TextRange } from '../data/sequences.js';
import { paragraphs, readText } from '../data/text.js';
import { greedyGenerate } from '../eval/generate.js';
import { compareToReference, referenceNll } from '../eval/kl.js';
import { costModelFor } from '../hardware/cost-model.js';
import { loadHardwareProfile } from '../hardware/load.js';
import { measureModels } from '../hardware/measure.js';
import { architectureCost } from '../hardware/model-cost.js';
import { loadCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { isObject, readJsonFile } from '../model/json.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { DecoderSession } from '../onnx/session.js';
import { cpuRuntime } from '../onnx/runtime.js';
import { referenceDistribution } from '../search/evaluate.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { fail } from '../util/errors.js';

export interface EvaluateOptions {
  readonly parent: string;
  readonly data: string;
  readonly tokens: number;
  readonly seqLen: number;
  readonly prompts: number;
  readonly promptTokens: number;
  readonly generateTokens: number;
  /** Profile whose scenarios are timed; default: the one the child was searched for. */
  readonly hardware?: string;
  /** Time the profile's scenarios (parent and child); off for quality-only evaluations. */
  readonly timing?: boolean;
  readonly repeats: number;
  readonly threads: number;
  readonly onStage?: (line: string) => void;
}

export interface ScenarioComparison {
  readonly scenario: string;
  readonly parentSeconds: { readonly prefill: number; readonly decode: number; readonly total: number };
  readonly childSeconds: { readonly prefill: number; readonly decode: number; readonly total: number };
  readonly measuredSpeedup: number;
  readonly predictedSpeedup: number;
}

export interface Evaluation {
  readonly child: string;
  readonly parent: string;
  readonly text: TextRange & { readonly note: string };
  readonly kl: number;
  readonly perplexity: { readonly parent: number; readonly child: number };
  readonly greedyAgreement: { readonly prompts: number; readonly tokens: number; readonly share: number };
  readonly hardware: string;
  readonly latency: readonly ScenarioComparison[];
  readonly skippedScenarios: readonly string[];
}

/** Paragraph index from which the text is new to the search: after the library's calibration and validation ranges. */
function unseenStart(childDir: string, data: string): { start: number; note: string } {
  const prov = existsSync(join(childDir, 'tessera.json')) ? readJsonFile(join(childDir, 'tessera.json'), 'export provenance') : null;
  const ranges = isObject(prov) && isObject(prov.libraryData) ? (prov.libraryData as { calibration: TextRange; validation: TextRange }) : null;
  if (ranges === null) return { start: 0, note: 'no provenance (tessera.json): the whole text is used' };
  const usedFile = resolve(ranges.validation.file);
  if (usedFile !== resolve(data)) return { start: 0, note: `the search used ${usedFile}; this text is another file, used whole` };
  const start = Math.max(ranges.calibration.paragraphs[1], ranges.validation.paragraphs[1]);
  return { start, note: `paragraphs from ${start} on: after the ${ranges.calibration.paragraphs[1]} + ${ranges.validation.paragraphs[1] - ranges.validation.paragraphs[0]} the search used for calibration and validation` };
}

async function greedyAgreement(parent: Checkpoint, child: Checkpoint, prompts: number[][], tokens: number, threads: number) {
  const make = (ck: Checkpoint) => DecoderSession.create(ck.config, ck.weights, { logits: 'last' }, cpuRuntime(threads));
  const [ps, cs] = await Promise.all([make(parent), make(child)]);
  let same = 0;
  let total = 0;
  try {
    for (const prompt of prompts) {
      const length = Math.min(prompt.length + tokens, parent.config.maxPositions);
      const a = await greedyGenerate(ps, prompt, length);
      const b = await greedyGenerate(cs, prompt, length);
      for (let t = prompt.length; t < length; t++) {
        total++;
        if (a[t] === b[t]) same++;
      }
    }
  } finally {
    await Promise.all([ps.release(), cs.release()]);
  }
  return { prompts: prompts.length, tokens: total, share: total > 0 ? same / total : NaN };
}

/**
 * Evaluates an exported child against its parent on text the search never saw: KL, perplexity of both,
 * greedy-generation agreement, and real onnxruntime latency per scenario beside the cost model's prediction.
 * Writes evaluation.json into the child directory.
 */
export async function evaluateChild(childDir: string, o: EvaluateOptions): Promise<Evaluation> {
  const child = loadCheckpoint(childDir);
  const parent = loadCheckpoint(o.parent);
  if (child.config.vocabSize !== parent.config.vocabSize || child.config.hiddenSize !== parent.config.hiddenSize) {
    fail(`${childDir}: is not a child of ${o.parent} (hidden ${child.config.hiddenSize} vs ${parent.config.hiddenSize}, vocab ${child.config.vocabSize} vs ${parent.config.vocabSize})`);
  }
  const seqLen = Math.min(o.seqLen, parent.config.maxPositions);
  const docs = paragraphs(readText(o.data));
  const { start, note } = unseenStart(childDir, o.data);
  const tokenizer = loadTokenizer(o.parent);
  const windows = takeWindows(tokenizer, docs, start, o.data, seqLen, o.tokens);
  if (windows.count === 0) fail(`${o.data}: no unseen text left after paragraph ${start} for a window of ${seqLen} tokens`);

  o.onStage?.(`quality on ${windows.range.tokens} unseen tokens (${note})`);
  const reference = await referenceDistribution(parent.config, parent.weights, windows, seqLen, o.threads);
  const parentNll = referenceNll(reference);
  const scoring = await DecoderSession.create(child.config, child.weights, { logits: 'score' }, cpuRuntime(o.threads));
  let quality: { kl: number; lmLoss: number };
  try {
    quality = await compareToReference(scoring, reference, (from, to, batch) => ({ ids: windows.ids.subarray(from, to), batch, seq: seqLen }));
  } finally {
    await scoring.release();
  }

  let agreement = { prompts: 0, tokens: 0, share: NaN };
  if (o.prompts > 0) {
    o.onStage?.(`greedy generation from ${o.prompts} prompts of ${o.promptTokens} tokens, ${o.generateTokens} new tokens each`);
    const later = takeWindows(tokenizer, docs, windows.range.paragraphs[1], o.data, o.promptTokens, o.prompts * o.promptTokens);
    const prompts = Array.from({ length: later.count }, (_, k) => Array.from(later.ids.subarray(k * o.promptTokens, (k + 1) * o.promptTokens)));
    agreement = await greedyAgreement(parent, child, prompts, o.generateTokens, o.threads);
  }

  const hardware = o.hardware ?? provenanceProfile(childDir);
  const profile = loadHardwareProfile(hardware);
  const costs = costModelFor(parent.config, profile);
  const predictedChild = architectureCost(parent.config, child.architecture as Architecture, profile, costs);
  const predictedParent = architectureCost(parent.config, parent.architecture, profile, costs);
  const latency: ScenarioComparison[] = [];
  const skipped: string[] = [];
  for (const [k, s] of (o.timing === false ? [] : profile.workload.scenarios).entries()) {
    if (s.prefillTokens + s.generatedTokens > parent.config.maxPositions) {
      skipped.push(`${s.name} (${s.prefillTokens}+${s.generatedTokens} tokens exceed the model's ${parent.config.maxPositions} positions)`);
      continue;
    }
    o.onStage?.(`timing scenario ${s.name} (batch ${s.batch}, ${s.prefillTokens}+${s.generatedTokens} tokens), parent and child`);
    const [p, c] = await measureModels([
      { config: parent.config, weights: parent.weights, arch: parent.architecture },
      { config: child.config, weights: child.weights, arch: child.architecture },
    ], s, { runtime: cpuRuntime(o.threads), repeats: o.repeats, warmup: 2 });
    const secs = (t: { prefillSeconds: number; decodeSeconds: number }) => ({ prefill: t.prefillSeconds, decode: t.decodeSeconds, total: t.prefillSeconds + t.decodeSeconds });
    latency.push({
      scenario: s.name,
      parentSeconds: secs(p),
      childSeconds: secs(c),
      measuredSpeedup: secs(p).total / secs(c).total,
      predictedSpeedup: predictedParent[k].totalSeconds / predictedChild[k].totalSeconds,
    });
  }
  const evaluation: Evaluation = {
    child: resolve(childDir),
    parent: resolve(o.parent),
    text: { ...windows.range, note },
    kl: quality.kl,
    perplexity: { parent: Math.exp(parentNll), child: Math.exp(quality.lmLoss) },
    greedyAgreement: agreement,
    hardware: resolve(hardware),
    latency,
    skippedScenarios: skipped,
  };
  if (o.timing !== false) writeJsonAtomic(join(childDir, 'evaluation.json'), evaluation);
  return evaluation;
}

function provenanceProfile(childDir: string): string {
  const path = join(childDir, 'tessera.json');
  const prov = existsSync(path) ? readJsonFile(path, 'export provenance') : null;
  const file = isObject(prov) ? prov.hardware : undefined;
  if (typeof file !== 'string') fail(`${childDir}: no tessera.json naming the hardware profile; pass --hardware`);
  return file;
}
