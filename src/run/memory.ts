import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import type { ModelConfig } from '../arch/config.js';
import type { Architecture } from '../arch/variant.js';
import { attentionParams, ffnParams, modelParams } from '../arch/params.js';
import type { SearchSpace } from '../space/types.js';
import { batchTokensFor } from '../lm/divergence.js';
import { defaultTokens } from '../bld/data.js';
import { headChunkWindows } from '../train/adapter-distillation.js';
import type { WeightSource } from '../model/weights.js';
import { endBytes, layerBytes, planStages, suffixCacheBytes } from '../onnx/staged.js';
import { fail } from '../util/errors.js';

/**
 * How much memory a command needs, as a function of the model and its options: the formula the README
 * states and bench:scale checks against measured peaks. Each part is what one thing holds at the peak.
 */
export interface MemoryEstimate {
  readonly bytes: number;
  readonly parts: readonly { readonly what: string; readonly bytes: number }[];
  /** The options that shrink the estimate, as a user would type them. */
  readonly knobs: string;
}

const F32 = 4;
/** Node, onnxruntime and the tokenizer, before any model (measured: `inspect` of any model). */
export const BASE_BYTES = 0.3e9;

/**
 * The float32 bytes of the largest stage (onnx/staged.ts plans them the same way); from layer `from` on, and
 * without the head's own stage when `withoutHead` (a scoring worker keeps that one built).
 */
export function largestStage(config: ModelConfig, architecture: Architecture, stageBytes: number, o: { from?: number; withoutHead?: boolean } = {}): number {
  const shape = { numLayers: architecture.length, architecture } as WeightSource;
  const stages = planStages(config, shape, stageBytes, o.from ?? 0).filter((s) => !(o.withoutHead && s.from === s.to));
  return Math.max(0, ...stages.map((s) => s.bytes));
}

/**
 * A staged forward at its peak: the largest stage as onnxruntime loads it (its own copy, the file it maps to
 * copy from, and the tensor being written into that file: 2.5 × the stage's float32 weights, as measured at the
 * 135M and 1B shapes) and one batch's logits three times (logits, log-softmax, their copy out).
 */
function forwardParts(config: ModelConfig, architecture: Architecture, stageBytes: number, seqLen: number) {
  return [
    { what: 'the largest stage of layers as onnxruntime loads it (2.5 × its float32 weights)', bytes: 2.5 * largestStage(config, architecture, stageBytes) },
    { what: 'one batch of logits, 3 copies', bytes: 3 * batchTokensFor(config.vocabSize, seqLen) * config.vocabSize * F32 },
  ];
}

const total = (parts: MemoryEstimate['parts']) => parts.reduce((s, p) => s + p.bytes, 0);

/** perplexity, generate: one staged forward. */
export function forwardMemory(config: ModelConfig, architecture: Architecture, o: { stageBytes: number; seqLen: number }): MemoryEstimate {
  const parts = [{ what: 'Node and onnxruntime', bytes: BASE_BYTES }, ...forwardParts(config, architecture, o.stageBytes, o.seqLen)];
  return { bytes: total(parts), parts, knobs: '--stage-mb (smaller stages)' };
}

/**
 * score, the larger of its two phases: first the parent's pass over the validation tokens (its log-probabilities
 * stream to disk as they are computed); then per worker, scoring a layer's candidates: what it keeps built of the
 * parent (the head and 2 stages of the last layers), a stage it builds for the layer's pass, the residual streams
 * of the layer's candidates and their float32 weights (the whole layer's: measured peaks held them all until the
 * layer's pass; a worker now lets each go once its layer output is computed, so this bounds it from above until
 * bench:scale measures again), one layer's activations, the FFN's hidden activations of the calibration tokens
 * (and the kept channels' copy), a ridge system (at most calibration tokens square: the dual form bounds it;
 * 28 bytes an entry: float32 Gram or kernel, its float64 copy and factor, a float32 update) and a batch of
 * reference rows.
 */
export function scoreMemory(
  config: ModelConfig,
  architecture: Architecture,
  o: { stageBytes: number; seqLen: number; workers: number; calibTokens: number; validTokens: number; candidatesPerLayer: number; candidateBytes?: number },
): MemoryEstimate {
  const E = config.hiddenSize;
  const batchRows = 3 * batchTokensFor(config.vocabSize, o.seqLen) * config.vocabSize * F32;
  const stage = largestStage(config, architecture, o.stageBytes, { from: 1, withoutHead: true });
  const ridge = 28 * Math.min(o.calibTokens, Math.max(config.intermediateSize, config.numHeads * config.headDim + 1, E + 1)) ** 2;
  const perWorker =
    suffixCacheBytes(config, architecture, o.stageBytes) + stage + (o.candidateBytes ?? 0) + o.candidatesPerLayer * o.validTokens * E * F32 + 4 * (o.calibTokens + o.validTokens) * E * F32 + 2 * o.calibTokens * config.intermediateSize * F32 + ridge + batchRows;
  const parent = [{ what: 'Node and onnxruntime', bytes: BASE_BYTES }, ...forwardParts(config, architecture, o.stageBytes, o.seqLen)];
  const candidates = [
    { what: 'Node and onnxruntime', bytes: BASE_BYTES },
    { what: `${o.workers} worker${o.workers === 1 ? '' : 's'}: the head and 2 stages kept built, one more in use, a layer's candidates' weights and streams, activations and ridge system`, bytes: o.workers * perWorker },
    // Workers build sessions one at a time: a build's weights as written and as packed, on top of the kept copy.
    { what: 'one session being built (1.5 × the head or a stage, the larger)', bytes: 1.5 * Math.max(endBytes(config).head, stage) },
  ];
  const parts = total(parent) > total(candidates) ? parent : candidates;
  return { bytes: total(parts), parts, knobs: '--workers (fewer), --stage-mb (smaller stages), --valid-tokens and --calib-tokens (fewer)' };
}

/** export: the child is written a tensor at a time (safetensors and ONNX alike); the largest is the embedding. */
export function exportMemory(config: ModelConfig): MemoryEstimate {
  const parts = [
    { what: 'Node and onnxruntime', bytes: BASE_BYTES },
    { what: 'the embedding table, read and widened to float32', bytes: 2 * config.vocabSize * config.hiddenSize * F32 },
  ];
  return { bytes: total(parts), parts, knobs: 'none needed' };
}

/**
 * evaluate, the larger of its phases: quality — the parent's log-probabilities on the evaluation tokens and one
 * staged forward at a time; and, with greedy generation or timing, one whole model in float32 at a time (the
 * parent's: every step of a generation or a timed run passes all layers, so all stay built) — its layers, the
 * head's table (token ids are looked up in the file, outside the sessions) and one stage being built; the head is
 * built first, so the table's three copies while it is built (as read, as onnxruntime loads it, as packed) never
 * meet the layers.
 */
export function evaluateMemory(config: ModelConfig, architecture: Architecture, o: { stageBytes: number; seqLen: number; tokens: number; wholeModel: boolean }): MemoryEstimate {
  const quality = [
    { what: 'Node and onnxruntime', bytes: BASE_BYTES },
    { what: "the parent's log-probabilities (tokens × vocabulary × 4)", bytes: o.tokens * config.vocabSize * F32 },
    ...forwardParts(config, architecture, o.stageBytes, o.seqLen),
  ];
  const table = config.vocabSize * config.hiddenSize * F32;
  const layers = layerBytes(config, { architecture }).reduce((a, b) => a + b, 0);
  const stage = largestStage(config, architecture, o.stageBytes, { from: 1, withoutHead: true });
  const whole = [
    { what: 'Node and onnxruntime', bytes: BASE_BYTES },
    ...(3 * table > table + layers + 2.5 * stage
      ? [{ what: "the head's table in float32 three times while the head is built (as read, as onnxruntime loads it, as packed)", bytes: 3 * table }]
      : [
          { what: "the parent's layers and the head's table in float32, all built (greedy generation and timing)", bytes: layers + table },
          { what: 'the last stage of layers as onnxruntime loads it (2.5 × its float32 weights)', bytes: 2.5 * stage },
        ]),
  ];
  const parts = o.wholeModel && total(whole) > total(quality) ? whole : quality;
  return { bytes: total(parts), parts, knobs: o.wholeModel ? '--prompts 0 --no-timing (quality alone, a stage at a time), --tokens (fewer), --stage-mb (smaller stages)' : '--tokens (fewer), --stage-mb (smaller stages)' };
}

/**
 * distill. Every weight ('full'): the child trains in float32 with AdamW: weights, gradients and two moments,
 * and the step's updated weights and moments as outputs before they replace the inputs (28 bytes a parameter);
 * the parent runs whole beside it as the teacher (its float32 weights); each step holds the activations kept
 * for the backward pass and about five copies of a batch's logits (the teacher's, their feed, the child's own).
 * Adapters ('lora'): the embedding (and an untied head) in float32, twice (the parent's, and the child's read to
 * find it the same), one layer at a time as it is computed (6 × its float32 weights: as read, transposed, adapted,
 * its gradient, and the last layer's arrays not yet collected — measured at the 1B shape) with its activations, both models' residual
 * streams between layers, a head chunk's logits 8 times and the adapters' training state (24 bytes an entry) —
 * or, when larger, the before/after comparison: a staged forward and the parent's distribution on the
 * evaluation tokens.
 */
export function distillMemory(
  config: ModelConfig,
  parent: Architecture,
  child: Architecture,
  o: { batch: number; seqLen: number; method: 'full' | 'lora'; lora: { rank: number }; stageBytes: number; evalTokens?: number },
): MemoryEstimate {
  const tokens = o.batch * o.seqLen;
  const E = config.hiddenSize;
  const V = config.vocabSize;
  const I = config.intermediateSize;
  const activations = tokens * (10 * E + 3 * I) * F32;
  if (o.method === 'full') {
    const parts = [
      { what: 'Node and onnxruntime', bytes: BASE_BYTES },
      { what: "the child's training state (28 bytes × its parameters)", bytes: 28 * modelParams(config, child) },
      { what: 'the parent as teacher (its float32 weights)', bytes: F32 * modelParams(config, parent) },
      { what: 'activations kept for the backward pass', bytes: child.length * activations },
      { what: "a batch's logits, 5 copies", bytes: 5 * tokens * V * F32 },
    ];
    return { bytes: total(parts), parts, knobs: '--method lora (adapters on a frozen child, a layer at a time), --batch (fewer windows a step)' };
  }
  const [q, kv] = [config.numHeads * config.headDim, config.numKvHeads * config.headDim];
  const layerWeights = (E * (2 * q + 2 * kv) + 3 * E * I) * F32;
  const adapterEntries = o.lora.rank * child.length * (7 * E + 2 * q + 2 * kv + 3 * I);
  const rows = headChunkWindows(o.batch, o.seqLen, V) * o.seqLen;
  const training = [
    { what: 'Node and onnxruntime', bytes: BASE_BYTES },
    { what: `the embedding${config.tieEmbeddings ? '' : ' and the LM head'} in float32, the parent's and the child's (read to find them equal)`, bytes: 2 * (config.tieEmbeddings ? 1 : 2) * V * E * F32 },
    { what: 'one layer as it is computed (6 × its float32 weights, as measured at 1B) and its activations', bytes: 6 * layerWeights + activations },
    { what: "both models' residual streams between layers", bytes: 2 * (child.length + 1) * tokens * E * F32 },
    { what: "a head chunk's logits, 8 copies", bytes: 8 * rows * V * F32 },
    { what: "the adapters' training state (24 bytes an entry)", bytes: 24 * adapterEntries },
  ];
  const evalTokens = o.evalTokens ?? defaultTokens(config).calibTokens;
  const comparison = [
    ...forwardMemory(config, parent, { stageBytes: o.stageBytes, seqLen: o.seqLen }).parts,
    { what: "the parent's distribution on the evaluation tokens (tokens × vocabulary × 4)", bytes: evalTokens * V * F32 },
  ];
  const parts = total(training) > total(comparison) ? training : comparison;
  return { bytes: total(parts), parts, knobs: '--batch (fewer windows a step), --eval-tokens (fewer), --stage-mb (smaller stages)' };
}

/**
 * The memory a command must fit in: TESSERA_MEMORY_GB when set, else the machine's, or the container's
 * limit (cgroup v2 memory.max) when lower.
 */
export function machineMemory(env: NodeJS.ProcessEnv = process.env): number {
  const set = env.TESSERA_MEMORY_GB;
  if (set !== undefined) {
    const gb = Number(set);
    if (!(gb > 0)) fail(`TESSERA_MEMORY_GB: "${set}" is not a positive number of gigabytes`);
    return gb * 1e9;
  }
  let limit = totalmem();
  try {
    const max = readFileSync('/sys/fs/cgroup/memory.max', 'utf8').trim();
    if (/^\d+$/.test(max)) limit = Math.min(limit, Number(max));
  } catch {
    // No cgroup v2 limit to read: the machine's memory it is.
  }
  return limit;
}

const gb = (b: number) => `${(b / 1e9).toFixed(1)} GB`;

/**
 * Refuses, before anything runs, a command whose estimate exceeds the machine's memory: a clear message
 * with the estimate, its largest part and the options that shrink it, rather than a process the kernel kills.
 */
export function ensureFits(command: string, e: MemoryEstimate, available = machineMemory()): void {
  if (e.bytes <= available) return;
  const largest = [...e.parts].sort((a, b) => b.bytes - a.bytes)[0];
  fail(`${command} needs about ${gb(e.bytes)} of memory and this machine has ${gb(available)}; the largest part is ${largest.what}, ${gb(largest.bytes)}. Options that need less: ${e.knobs}.`);
}

/** The candidates of a space's largest layer: how many, and their float32 weights' bytes (what a scoring worker holds of them). */
export function layerCandidates(config: ModelConfig, space: SearchSpace): { readonly count: number; readonly bytes: number } {
  const per = space.layers.map((l) => ({
    count: l.attention.length + l.ffn.length,
    bytes: F32 * (l.attention.reduce((n, a) => n + attentionParams(config, a), 0) + l.ffn.reduce((n, f) => n + ffnParams(config, f), 0)),
  }));
  return { count: Math.max(...per.map((p) => p.count)), bytes: Math.max(...per.map((p) => p.bytes)) };
}
