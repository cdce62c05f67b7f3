import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { allWindows, takeWindows } from '../data/sequences.js';
import { paragraphs, readText } from '../data/text.js';
import { refuseExisting, writeModelDirectory } from '../export/model-dir.js';
import { readProvenance, type ChildProvenance, type DistillationRecord } from '../export/provenance.js';
import { distributionOn, modelDivergence, referenceNll } from '../lm/divergence.js';
import { loadCheckpoint, openCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { readJsonFile } from '../model/json.js';
import { loadTokenizer } from '../model/tokenizer.js';
import type { Runtime } from '../onnx/runtime.js';
import type { LossWeights } from '../train/graph.js';
import { distil } from '../train/distillation.js';
import { fail } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import { silent, type Reporter } from '../util/reporter.js';
import { median } from '../util/timing.js';
import type { ModelConfig } from '../arch/config.js';
import { modelParams } from '../arch/params.js';
import type { Architecture } from '../arch/variant.js';
import { defaultTokens } from '../bld/data.js';
import { sourceOf, type ModelWeights, type WeightSource } from '../model/weights.js';
import { distilAdapters } from '../train/adapter-distillation.js';
import { LORA_DEFAULTS, mergedSource, type LoraSettings } from '../train/lora.js';
import type { TrainingResult } from '../train/loop.js';
import type { Run } from '../run/run.js';

export interface DistillOptions {
  readonly data: string;
  /** Training tokens: steps × batch × seqLen, rounded up to whole steps. */
  readonly tokens: number;
  readonly loss: LossWeights;
  /** Peak learning rate (default: `defaultLearningRate` of the child). */
  readonly lr?: number;
  readonly warmup: number;
  readonly batch: number;
  readonly seqLen: number;
  readonly clip: number;
  readonly seed: number;
  readonly checkpointEvery: number;
  /** Unseen tokens on which the child is compared with its parent before and after (default: `defaultTokens`' calibration count for the parent's size). */
  readonly evalTokens?: number;
  /** Every weight ('full'), or low-rank adapters on a frozen child ('lora'); default by size (`defaultDistillMethod`). */
  readonly method?: DistillMethod;
  /** The adapters' rank and α (method 'lora'). */
  readonly lora?: LoraSettings;
  readonly runtime: Runtime;
  readonly reporter?: Reporter;
  readonly signal?: AbortSignal;
}

/** The settings `tessera distill` and `tessera search --distill-tokens` use unless told otherwise. */
export const DISTILL_DEFAULTS = { warmup: 20, batch: 16, seqLen: 128, clip: 1, seed: 0, checkpointEvery: 50 } as const;

/**
 * The default loss: KL on logits, cosine distance of every layer's residual stream, and half the LM loss. Measured
 * by `npm run bench:distill` (both shared models' ×1.5 children, 614k tokens): it leaves the lowest sum of KL and
 * excess NLL on unseen text; without the LM term the child stays slightly closer to its parent's distribution but
 * closes less of the NLL gap (stories260K 58% against 73%, babyllama 66% against 71%); with the LM term at full
 * weight it drifts further from it (KL 0.196 against 0.170 on stories260K). Puzzle found the LM loss harmful when
 * distilling on text unlike the parent's training data: with such text, `--loss kl+cosine`.
 */
export const DEFAULT_LOSS = 'kl+cosine+lm=0.5';

export type DistillMethod = 'full' | 'lora';

/**
 * Children of up to this many parameters train every weight by default. Full training holds 28 bytes a
 * parameter (weights, gradients, two moments, their next values) and the whole model's activations: 3.8 GB
 * of state alone at 135M. Larger ones train low-rank adapters a layer at a time, in a few GB at 1B.
 */
export const FULL_DISTILLATION_MOST_PARAMS = 50e6;

export function defaultDistillMethod(config: ModelConfig, child: Architecture): DistillMethod {
  return modelParams(config, child) <= FULL_DISTILLATION_MOST_PARAMS ? 'full' : 'lora';
}

/**
 * The peak learning rate distillation uses unless told. Adam's step is about the learning rate per element
 * whatever the weight's size, so the rate follows the child's own weight scale: 2e-3 × (s / 0.125)², s the
 * median RMS of its linear weights, between 1e-5 and 2e-3. Calibrated on the shared models: stories260K
 * (s 0.125) takes 2e-3, the PyTorch reference setting; babyllama (s 0.022: weights ten times smaller at twice
 * the width) takes 6e-5 — on its ×1.5 child 5e-4 closed 17% of the NLL gap in 102k tokens and 2e-3 made it
 * worse, while 5e-5–1e-4 closed 44–46% (and 65–67% in 614k tokens). Adapters start at zero and move few
 * weights: LoRA recipes train them ~10× faster than full fine-tuning, so they take 1e-3 whatever the scale.
 */
export function defaultLearningRate(weights: ModelWeights | null, method: DistillMethod = 'full'): number {
  if (method === 'lora' || weights === null) return LORA_LEARNING_RATE;
  return Math.min(2e-3, Math.max(1e-5, 2e-3 * (linearWeightScale(weights) / 0.125) ** 2));
}

const LORA_LEARNING_RATE = 1e-3;

/** The median root-mean-square of a model's linear (two-dimensional) layer weights. */
export function linearWeightScale(weights: ModelWeights): number {
  const rms = weights.layers
    .flatMap((l) => [l.attention, l.ffn])
    .flatMap((b) => Object.values(b.tensors))
    .filter((t) => t.shape.length === 2)
    .map((t) => Math.sqrt(t.data.reduce((sum, x) => sum + x * x, 0) / t.data.length));
  if (rms.length === 0) return 0;
  return median(rms);
}

/** The split of a text: distillation trains on its first 60% of paragraphs and is judged on its last 20%. */
export const TRAIN_SHARE = 0.6;
export const EVAL_FROM = 0.8;

export type DistillResult = { readonly status: 'interrupted'; readonly steps: number } | { readonly status: 'complete'; readonly dir: string; readonly record: DistillationRecord };

/** Where a distillation keeps its checkpoints while it runs: beside its output, removed when it is written. */
export const checkpointDirOf = (outDir: string) => `${resolve(outDir)}.checkpoint`;

/**
 * The distill stage (global knowledge distillation): trains every weight of an exported child toward its
 * parent on the first part of a text — KL on logits, cosine on hidden states, LM loss, or a weighted sum —
 * and writes the result as a model directory in the format `tessera export` writes, comparing child and
 * parent on the text's last part before and after. Interrupted, it keeps a checkpoint; rerun, it resumes.
 */
export async function distillChild(childDir: string, parent: Checkpoint, outDir: string, o: DistillOptions): Promise<DistillResult> {
  const reporter = o.reporter ?? silent;
  const out = refuseExisting(outDir);
  const parentOfOut = dirname(out);
  try {
    mkdirSync(parentOfOut, { recursive: true });
    accessSync(parentOfOut, constants.W_OK);
  } catch {
    fail(`${out}: cannot write there (${parentOfOut} is not a writable directory); choose another --out`);
  }
  const opened = openCheckpoint(childDir);
  const method = o.method ?? defaultDistillMethod(opened.config, opened.architecture);
  const lora = o.lora ?? LORA_DEFAULTS;
  // Full training holds the child in memory; adapters leave it in its files.
  const loaded = method === 'full' ? loadCheckpoint(childDir) : null;
  const child: Checkpoint = loaded ?? opened;
  if (child.config.vocabSize !== parent.config.vocabSize || child.config.hiddenSize !== parent.config.hiddenSize) {
    fail(`${childDir}: is not a child of ${parent.dir} (hidden ${child.config.hiddenSize} vs ${parent.config.hiddenSize}, vocab ${child.config.vocabSize} vs ${parent.config.vocabSize})`);
  }
  const seqLen = Math.min(o.seqLen, parent.config.maxPositions);
  const file = resolve(o.data);
  const docs = paragraphs(readText(file));
  const tokenizer = loadTokenizer(parent.dir);
  const trainWindows = allWindows(tokenizer, docs, 0, Math.floor(TRAIN_SHARE * docs.length), file, seqLen);
  if (trainWindows.count < o.batch) {
    fail(`${o.data}: its first ${Math.round(100 * TRAIN_SHARE)}% holds ${trainWindows.count} windows of ${seqLen} tokens, fewer than one batch of ${o.batch}; use a longer text or a smaller --batch / --seq-len`);
  }
  const evalWindows = takeWindows(tokenizer, docs, Math.floor(EVAL_FROM * docs.length), file, seqLen, o.evalTokens ?? defaultTokens(parent.config).calibTokens);
  if (evalWindows.count === 0) fail(`${o.data}: its last ${Math.round(100 * (1 - EVAL_FROM))}% holds no window of ${seqLen} tokens to evaluate on`);
  const steps = Math.ceil(o.tokens / (o.batch * seqLen));
  const lr = o.lr ?? defaultLearningRate(loaded?.weights ?? null, method);

  // The parent's distribution on the unseen windows is computed for each comparison rather than held through
  // training: at a real vocabulary it is gigabytes (tokens × vocabulary × 4 bytes).
  const judge = async (weights: WeightSource) => {
    const reference = await distributionOn(parent.config, parent.source, evalWindows, seqLen, o.runtime);
    return { ...(await modelDivergence(child.config, weights, evalWindows.ids, reference, o.runtime)), parentNll: referenceNll(reference) };
  };
  reporter.stage(`the child against its parent on ${evalWindows.range.tokens} unseen tokens (paragraphs ${evalWindows.range.paragraphs.join('–')}), before distillation`);
  const before = await judge(child.source);
  const parentNll = before.parentNll;

  const how = method === 'full' ? 'every weight' : `rank-${lora.rank} adapters (α ${lora.alpha}) on every linear weight, a layer at a time`;
  reporter.stage(`distilling ${child.dir} toward ${parent.dir} (${how}): ${steps} steps of ${o.batch} × ${seqLen} tokens (${steps * o.batch * seqLen} tokens) from paragraphs ${trainWindows.range.paragraphs.join('–')}, loss ${describeLoss(o.loss)}`);
  const checkpointDir = checkpointDirOf(out);
  const identity = sha256(JSON.stringify({ child: child.fingerprint, parent: parent.fingerprint, text: sha256(readFileSync(file)), steps, seqLen, method, o: { ...o, lora: method === 'lora' ? lora : undefined, runtime: undefined, reporter: undefined, signal: undefined } }));
  const settings = {
    steps, batch: o.batch, seqLen, lr, warmup: o.warmup, clip: o.clip, loss: o.loss, seed: o.seed,
    checkpoint: { every: o.checkpointEvery, dir: checkpointDir, identity }, runtime: o.runtime, reporter, signal: o.signal,
  };
  const teacher = { config: parent.config, weights: parent.source };
  let weights: ModelWeights | WeightSource;
  let losses: TrainingResult['losses'];
  if (loaded !== null) {
    const trained = await distil(loaded.config, loaded.weights, teacher, trainWindows, settings);
    if (trained.status === 'interrupted') return { status: 'interrupted', steps: trained.steps };
    [weights, losses] = [loaded.weights, trained.losses];
  } else {
    const trained = await distilAdapters(child.config, child.source, teacher, trainWindows, { ...settings, lora });
    if (trained.status === 'interrupted') return { status: 'interrupted', steps: trained.steps };
    [weights, losses] = [mergedSource(child.source, trained.adapters, lora), trained.losses];
  }

  reporter.stage('the distilled child against its parent on the same unseen tokens');
  const after = await judge(sourceOf(weights));
  const record: DistillationRecord = {
    from: child.dir,
    method,
    ...(method === 'lora' ? { adapters: lora } : {}),
    loss: { ...o.loss },
    tokens: steps * o.batch * seqLen,
    steps,
    batch: o.batch,
    seqLen,
    lr,
    warmup: o.warmup,
    seed: o.seed,
    train: trainWindows.range,
    evaluation: evalWindows.range,
    before: { kl: before.kl, perplexity: Math.exp(before.lmLoss) },
    after: { kl: after.kl, perplexity: Math.exp(after.lmLoss) },
    parentPerplexity: Math.exp(parentNll),
    nllGapClosed: (before.lmLoss - after.lmLoss) / (before.lmLoss - parentNll),
  };
  const earlier = readProvenance(child.dir);
  const provenance: ChildProvenance = {
    format: 'tessera-child',
    version: 1,
    parent: parent.dir,
    run: earlier?.run ?? '',
    solution: earlier?.solution ?? '',
    specSha256: earlier?.specSha256 ?? '',
    hardware: earlier?.hardware ?? '',
    data: { seqLen, calibration: trainWindows.range, validation: earlier?.data.validation ?? trainWindows.range },
    distillation: record,
  };
  const configJson = readJsonFile(`${child.dir}/config.json`, 'model config') as Record<string, unknown>;
  const dir = writeModelDirectory(out, {
    configJson, config: child.config, architecture: child.architecture, weights, companionsFrom: child.dir, provenance, dtype: child.dtype,
    extra: { 'distillation.json': { ...record, losses } },
  });
  if (existsSync(checkpointDir)) rmSync(checkpointDir, { recursive: true, force: true });
  return { status: 'complete', dir, record };
}

/**
 * The distill stage of a run: solution `id`'s exported child distilled into `children/<id>-kd`. A distilled
 * child already there from the same child and the same settings is kept; any other is replaced.
 */
export async function distillSolution(run: Run, id: string, o: DistillOptions): Promise<DistillResult & { readonly reused?: boolean }> {
  const from = run.paths.child(id);
  const out = run.paths.distilled(id);
  const earlier = readProvenance(out);
  const same = earlier?.distillation !== undefined && earlier.specSha256 === readProvenance(from)?.specSha256 && sameSettings(earlier.distillation, o);
  if (same) return { status: 'complete', dir: out, record: earlier.distillation!, reused: true };
  rmSync(out, { recursive: true, force: true });
  return distillChild(from, run.parent(), out, o);
}

function sameSettings(r: DistillationRecord, o: DistillOptions): boolean {
  const steps = Math.ceil(o.tokens / (o.batch * r.seqLen));
  const method = o.method ?? r.method ?? 'full';
  const lora = o.lora ?? LORA_DEFAULTS;
  return (r.method ?? 'full') === method && (method === 'full' || JSON.stringify(r.adapters) === JSON.stringify(lora)) && JSON.stringify(r.loss) === JSON.stringify(o.loss) && r.steps === steps && r.batch === o.batch && (o.lr === undefined || r.lr === o.lr) && r.warmup === o.warmup && r.seed === o.seed && r.train.file === resolve(o.data);
}

export function describeLoss(loss: LossWeights): string {
  return Object.entries(loss).filter(([, w]) => (w ?? 0) > 0).map(([k, w]) => (w === 1 ? k : `${w}·${k}`)).join(' + ');
}

/** Parses `--loss`: terms joined by `+`, each `name` or `name=weight` (kl, cosine, lm). */
export function parseLoss(text: string): LossWeights {
  const out: Record<string, number> = {};
  for (const part of text.split('+').map((p) => p.trim())) {
    const [name, weight = '1'] = part.split('=');
    const w = Number(weight);
    if (!['kl', 'cosine', 'lm'].includes(name) || !(w > 0)) fail(`option --loss: "${text}" is not a loss; expected terms kl, cosine, lm joined by +, each optionally =weight (e.g. kl+cosine or kl=1+lm=0.5)`);
    out[name] = w;
  }
  return out;
}
