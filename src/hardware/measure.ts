import type { ModelConfig } from '../arch/config.js';
import { EMPTY_BLOCK, type Architecture, type AttentionVariant, type BlockConfig, type FfnVariant } from '../arch/variant.js';
import { timingWeights } from '../model/random.js';
import { sourceOf, withCachedRows, type ModelWeights, type WeightSource } from '../model/weights.js';
import { StagedDecoder } from '../onnx/staged.js';
import { fusedAttentionRuns } from '../onnx/decoder-graph.js';
import type { Runtime } from '../onnx/runtime.js';
import { DecoderSession, KvBuffers, type KvCache, type TokenBatch } from '../onnx/session.js';
import { cachedKvHeadsOf, removesSubBlock } from '../arch/variants/registry.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { argmax } from '../lm/generate.js';
import { median, medianSeconds } from '../util/timing.js';
import { BATCHES, preciseEnough, speedupInterval, type SpeedupInterval } from './interval.js';
import { totalSeconds, type Scenario, type ScenarioTime } from './types.js';

export interface MeasureOptions {
  readonly runtime: Runtime;
  /** Rounds, each building every graph afresh and timing it (the median over rounds is kept). */
  readonly repeats: number;
  /** Untimed runs of each build before it is timed. */
  readonly warmup: number;
  /**
   * Rounds go on past `repeats` until this many seconds have been spent (sub-blocks: wall time, builds included;
   * whole models: timed runs), at most MAX_ROUNDS: a small model's rounds are short and vary by ±30% from build to
   * build on a shared machine, so it gets many; a large model's few already take longer. Default 0: `repeats` rounds.
   */
  readonly minSeconds?: number;
  /** Attention as onnxruntime's fused kernel (default where it runs the model: `fusedAttentionRuns`), as the exported model.onnx runs it; false: standard ops. */
  readonly fusedAttention?: boolean;
}

// Within one build: the median of a few calls (and of 50 ms at least), so that one short call's jitter is not its time.
const RUNS_PER_BUILD = 3;
const timed = (fn: () => Promise<unknown>, o: MeasureOptions) => medianSeconds(fn, { minRuns: RUNS_PER_BUILD, warmup: o.warmup });

/** Rounds at most, however short they are. */
export const MAX_ROUNDS = 40;

// Each sub-block is timed as a stack of this many copies, so per-call overhead and timer noise are
// spread over many blocks instead of swamping one small one.
const STACK = 8;

const noise = (rng: Rng, shape: number[]): Tensor => ({ data: rng.normalArray(shape.reduce((a, b) => a * b, 1)), shape });

function randomCache(rng: Rng, session: DecoderSession, batch: number, past: number, kvHeads: (layer: number) => number): Map<number, KvCache> {
  return new Map(session.cachedLayers.map((i) => {
    const shape = [batch, kvHeads(i), past, session.config.headDim];
    return [i, { key: noise(rng, shape), value: noise(rng, shape) }];
  }));
}

/**
 * Times one graph as a scenario uses it: the prefill call, and decode calls at the first and the last
 * decode step's context. Decode cost grows linearly with context, so (first + last) / 2 × steps is the
 * trapezoid sum of all steps.
 */
async function timeScenario(session: DecoderSession, s: Scenario, o: MeasureOptions, input: (batch: number, seq: number) => Tensor | TokenBatch, kvHeads: (layer: number) => number, rng: Rng): Promise<ScenarioTime> {
  // As whole models are timed: K/V buffers where the runtime keeps them with the fused kernel, caches through JavaScript without.
  // (A graph without logits never advances its buffers: every timed call sees the same past.)
  const cacheOf = async (past: number, seq: number): Promise<Map<number, KvCache> | KvBuffers> => {
    if (!session.options.kvBuffer) return randomCache(rng, session, s.batch, past, kvHeads);
    const buffers = await session.kvBuffers(s.batch, past + seq, kvHeads);
    buffers.advance(past);
    return buffers;
  };
  const timedWith = async (past: number, seq: number, call: Tensor | TokenBatch) => {
    const cache = await cacheOf(past, seq);
    try {
      return await timed(() => session.run(call, cache), o);
    } finally {
      if (cache instanceof KvBuffers) await cache.dispose();
    }
  };
  const prefillSeconds = await timedWith(0, s.prefillTokens, input(s.batch, s.prefillTokens));
  const steps = s.generatedTokens - 1;
  if (steps === 0) return { prefillSeconds, decodeSeconds: 0 };
  const stepInput = input(s.batch, 1);
  const at = (past: number) => timedWith(past, 1, stepInput);
  const first = await at(s.prefillTokens);
  const last = steps > 1 ? await at(s.prefillTokens + steps - 1) : first;
  return { prefillSeconds, decodeSeconds: (steps * (first + last)) / 2 };
}

/** A stack of STACK copies of one block, run from the residual stream (weights are seeded noise: speed does not depend on them). */
async function blockSession(config: ModelConfig, block: BlockConfig, runtime: Runtime, rng: Rng, fusedAttention: boolean) {
  const arch: Architecture = Array.from({ length: STACK }, () => block);
  // The residual stream in, nothing out: no embedding or LM head to draw (a vocabulary of one).
  const stack = { ...config, numLayers: STACK, vocabSize: 1 };
  const session = await DecoderSession.create(stack, timingWeights(stack, arch, rng), { hiddenInput: true, kvCache: true, logits: 'none', fusedAttention, kvBuffer: fusedAttention }, runtime);
  return { session, kvHeads: cachedKvHeadsOf(config, arch) };
}

export interface SubBlockTimings {
  readonly attention: ReadonlyMap<string, ScenarioTime>;
  readonly ffn: ReadonlyMap<string, ScenarioTime>;
  /** Embeddings, final norm, LM head, and the fixed cost of each forward call. */
  readonly rest: ScenarioTime;
}

/**
 * One block's time from rounds of a stack of `height` copies and of the empty stack (the same rounds, in order):
 * the median over rounds of the stack less that round's empty stack, per copy, never negative. Pure.
 */
export function blockTime(stack: readonly ScenarioTime[], empty: readonly ScenarioTime[], height: number): ScenarioTime {
  if (stack.length !== empty.length || stack.length === 0) throw new RangeError(`${stack.length} rounds of a stack against ${empty.length} of the empty one`);
  const of = (phase: (t: ScenarioTime) => number) => Math.max(0, median(stack.map((t, r) => phase(t) - phase(empty[r])))) / height;
  return { prefillSeconds: of((t) => t.prefillSeconds), decodeSeconds: of((t) => t.decodeSeconds) };
}

/**
 * Measures every distinct sub-block variant in one scenario with onnxruntime on this machine. Each
 * sub-block is timed as a stack of identical copies; the time of an empty stack with the same inputs and
 * outputs (call overhead, copying the residual stream) is subtracted and the rest divided by the stack
 * height, so that per-block times add up to a whole model.
 *
 * Timed in rounds over builds, as whole models are (`compareModels`): each round builds every stack afresh,
 * times it and releases it, and a variant's time is the median over rounds of its stack less that round's
 * empty stack. One build per stack was not enough: six builds of one attention stack in one process took
 * 9.1, 7.9, 6.2, 5.0, 4.2 and 4.4 ms (stories260K, single-prompt decode) — a process's first builds run
 * slow, and builds differ — so a profile timed once priced the variants it timed first up to twice too
 * high. A first round is run untimed for the same reason.
 */
export async function measureSubBlocks(
  config: ModelConfig,
  variants: { attention: readonly [string, AttentionVariant][]; ffn: readonly [string, FfnVariant][] },
  s: Scenario,
  o: MeasureOptions,
  onProgress: (done: number, total: number) => void = () => {},
): Promise<SubBlockTimings> {
  const rng = new Rng(0x7e55);
  const fused = o.fusedAttention ?? fusedAttentionRuns(config);
  const hidden = (batch: number, seq: number) => noise(rng, [batch, seq, config.hiddenSize]);
  const ids = (batch: number, seq: number) => ({ ids: Int32Array.from({ length: batch * seq }, () => rng.int(config.vocabSize)), batch, seq });
  const timedStack = async (block: BlockConfig) => {
    const { session, kvHeads } = await blockSession(config, block, o.runtime, rng, fused);
    try {
      return await timeScenario(session, s, o, hidden, kvHeads, rng);
    } finally {
      await session.release();
    }
  };
  // The rest: token ids in, last-position logits out, through an empty layer.
  const timedRest = async () => {
    const restConfig = { ...config, numLayers: 1 };
    const session = await DecoderSession.create(restConfig, timingWeights(restConfig, [EMPTY_BLOCK], rng), { logits: 'last' }, o.runtime);
    try {
      return await timeScenario(session, s, o, ids, () => 0, rng);
    } finally {
      await session.release();
    }
  };
  // A no-op sub-block is the empty stack itself: it costs nothing by construction, and is not timed.
  const timedAttention = variants.attention.filter(([, v]) => !removesSubBlock('attention', v));
  const timedFfn = variants.ffn.filter(([, v]) => !removesSubBlock('ffn', v));
  const stacks: BlockConfig[] = [EMPTY_BLOCK, ...timedAttention.map(([, v]) => ({ ...EMPTY_BLOCK, attention: v })), ...timedFfn.map(([, v]) => ({ ...EMPTY_BLOCK, ffn: v }))];
  const times: ScenarioTime[][] = stacks.map(() => []);
  const rest: ScenarioTime[] = [];
  const started = performance.now();
  const enough = () => {
    const n = rest.length;
    return n >= MAX_ROUNDS || (n >= Math.max(1, o.repeats) && (performance.now() - started) / 1000 >= (o.minSeconds ?? 0));
  };
  // Progress counts the rounds `repeats` asks for (and the untimed one); rounds that time adds go past it.
  const planned = (Math.max(1, o.repeats) + 1) * (stacks.length + 1);
  let done = 0;
  onProgress(0, planned);
  for (let r = 0; r === 0 || !enough(); r++) {
    const warmRound = r === 0;
    // Every other round in reverse, so that drift within a round falls on all stacks alike.
    const order = [...stacks.keys()];
    if (r % 2 === 1) order.reverse();
    const round: ScenarioTime[] = [];
    for (const k of order) {
      round[k] = await timedStack(stacks[k]);
      onProgress(Math.min(++done, planned), planned);
    }
    const t = await timedRest();
    onProgress(Math.min(++done, planned), planned);
    if (warmRound) continue;
    round.forEach((x, k) => times[k].push(x));
    rest.push(t);
  }
  onProgress(planned, planned);
  const nothing: ScenarioTime = { prefillSeconds: 0, decodeSeconds: 0 };
  const timedKeys = new Map([...timedAttention, ...timedFfn].map(([key], i) => [key, i + 1]));
  const priced = (list: readonly [string, unknown][]) => new Map(list.map(([key]) => [key, timedKeys.has(key) ? blockTime(times[timedKeys.get(key)!], times[0], STACK) : nothing]));
  return { attention: priced(variants.attention), ffn: priced(variants.ffn), rest: medianTime(rest) };
}

/** A model as a scenario runs it, ready to time: one call runs the whole scenario once. */
async function scenarioRunner(config: ModelConfig, weights: ModelWeights | WeightSource, arch: Architecture, s: Scenario, runtime: Runtime, fusedAttention: boolean): Promise<ScenarioRun> {
  // The fused kernel appends to K/V buffers (in place on the CPU, on the device's copy on a GPU); the standard graph's
  // caches go through JavaScript each step.
  // Token rows come from memory after the first run (its warm-up), as a deployed model's embedding does.
  const session = await StagedDecoder.create(config, withCachedRows(sourceOf(weights)), { kvCache: true, logits: 'last', fusedAttention, kvBuffer: fusedAttention }, runtime, { repeated: true });
  const rng = new Rng(0x5eed);
  const prompt = Int32Array.from({ length: s.batch * s.prefillTokens }, () => rng.int(config.vocabSize));
  const kvHeads = cachedKvHeadsOf(config, arch);
  const buffers = fusedAttention ? await session.kvBuffers(s.batch, s.prefillTokens + s.generatedTokens, kvHeads) : null;
  const run = async (): Promise<RunTime> => {
    buffers?.reset();
    const t0 = performance.now();
    let r = await session.run({ ids: prompt, batch: s.batch, seq: s.prefillTokens }, buffers ?? session.emptyCache(s.batch, kvHeads));
    const t1 = performance.now();
    const decodeSteps: number[] = [];
    let stepStart = t1;
    for (let t = 1; t < s.generatedTokens; t++) {
      const V = config.vocabSize;
      const next = Int32Array.from({ length: s.batch }, (_, b) => argmax(r.logits!.data.subarray(b * V, (b + 1) * V)));
      r = await session.run({ ids: next, batch: s.batch, seq: 1 }, buffers ?? r.present);
      const stepEnd = performance.now();
      decodeSteps.push((stepEnd - stepStart) / 1000);
      stepStart = stepEnd;
    }
    return { prefillSeconds: (t1 - t0) / 1000, decodeSeconds: (stepStart - t1) / 1000, decodeSteps };
  };
  return { run, release: async () => { await buffers?.dispose(); await session.release(); } };
}

export const medianTime = (runs: readonly ScenarioTime[]): ScenarioTime => ({ prefillSeconds: median(runs.map((r) => r.prefillSeconds)), decodeSeconds: median(runs.map((r) => r.decodeSeconds)) });

/**
 * Measures a whole model as a scenario runs it: one prefill call producing the K/V cache, then one decode
 * call per further token feeding the cache back (greedy tokens). Median over rounds, each a fresh build timed as the
 * fastest of its runs (`fastestRun`): `repeats` of them, and more while fewer than `minSeconds` have been timed.
 */
export async function measureModel(config: ModelConfig, weights: ModelWeights | WeightSource, arch: Architecture, s: Scenario, o: MeasureOptions): Promise<ScenarioTime> {
  const t = await compareModels([{ config, weights, arch }], s, { runtime: o.runtime, warmup: o.warmup, minRounds: o.repeats, maxRounds: Math.max(o.repeats, MAX_ROUNDS), precision: 1, minSeconds: o.minSeconds, maxSeconds: Infinity, fusedAttention: o.fusedAttention });
  return t.medians[0];
}

/** How long and how precisely `compareModels` times. */
export interface ProtocolOptions {
  readonly runtime: Runtime;
  /** Untimed runs of each build of a model before it is timed. */
  readonly warmup: number;
  /** Rounds (each times every model once): at least `minRounds` (and 2: an interval needs two), then until every speed-up is precise enough, at most `maxRounds`. */
  readonly minRounds: number;
  readonly maxRounds: number;
  /** Enough: each speed-up's 95% interval within ±`precision` of it (0.03: ±3%). */
  readonly precision: number;
  /** Timed seconds (every timed run's, kept or not) before which rounds go on, precise or not (up to `maxRounds`); default 0. */
  readonly minSeconds?: number;
  /** Timed seconds after which no further round starts, precise or not. */
  readonly maxSeconds: number;
  /** See `MeasureOptions.fusedAttention`. */
  readonly fusedAttention?: boolean;
  /** Called after each round with the number of rounds timed so far (progress). */
  readonly onRound?: (rounds: number) => void;
  /** Timed runs of each build, after the warm-up (default: `runsPerBuild` of the first model's first run); the fastest is kept (`fastestRun`). */
  readonly timedRuns?: number;
}

/**
 * At least ten batches of two rounds, so that the batch means (`speedupInterval`) can see the machine drift within a
 * run before it may stop as precise: five rounds stopped at the sign test's 93% interval of a run's first seconds
 * (stories260K's ×1.5 child, batch-8: ×1.73–1.81), which two later runs of ten missed.
 *
 * Two warm-up runs: a build's second run is not yet its steady state. At the SmolLM2-135M shape, batch-8 prefill took
 * 700–730 ms in the second run of the fused graph and 410–490 ms from the third on (the standard graph 580–590 against
 * 455–480). onnxruntime's memory pattern (the memory of a run planned from an earlier run of the same input shapes)
 * makes it so: with it off, no run after the first stood out. Timed at its second run, as a long model's single timed
 * run was, the fused graph looked 14–19% slower to prefill than the standard one; from the third on it is faster.
 */
export const DEFAULT_PROTOCOL: Omit<ProtocolOptions, 'runtime'> = { warmup: 2, minRounds: 2 * BATCHES, maxRounds: 60, precision: 0.03, maxSeconds: 120 };

/** A model to time: its weights and architecture; `fusedAttention` overrides the protocol's (to time both graphs of one model). */
export interface TesseraModel {
  readonly config: ModelConfig;
  readonly weights: ModelWeights | WeightSource;
  readonly arch: Architecture;
  readonly fusedAttention?: boolean;
}

/** One run of a scenario: how long each part took and, where the runner can say, each decode step. */
export interface RunTime extends ScenarioTime {
  /** Seconds of each decode step in order (summing to `decodeSeconds`). */
  readonly decodeSteps?: readonly number[];
}

/** A scenario ready to run: each call runs it once (prefill, then one decode step per further token) and says how long each part took. */
export interface ScenarioRun {
  run(): Promise<RunTime>;
  release(): Promise<void>;
}

/**
 * Timed runs of each build (`fastestRun` keeps the fastest). A larger model's run is now and then stalled as a whole:
 * babyllama's parent at batch-8, thirty builds each timed once, prefilled in 9–12 ms in eighteen and 24–38 ms in
 * twelve, while its sub-blocks (each the median of many calls) never are. Its median over rounds then flipped with
 * how often runs stalled that minute, the parent looked 15–24% slower per summed block time than the models it is
 * compared with, and every babyllama batch-8 child was priced 15–27% too slow. The fastest of three runs per build:
 * prefill 8–9 ms in all twenty builds.
 */
export const TIMED_RUNS = 3;

/**
 * Runs of a quarter second or more are timed once per build: a stall (tens of milliseconds) is then within the noise
 * that the median over rounds already absorbs, and three runs a build cost rounds (the SmolLM2-135M shape's draws got
 * 5–11 rounds in the 120 s that gave 18–29 with one run).
 */
export const FASTEST_OF_SECONDS = 0.25;

/** Timed runs per build for models whose run takes `seconds` (pure): TIMED_RUNS for short runs, one for long ones. */
export const runsPerBuild = (seconds: number): number => (seconds < FASTEST_OF_SECONDS ? TIMED_RUNS : 1);

/**
 * The fastest of several runs of one build, part by part (pure): the least prefill, and decode step by step — each
 * step's least time over the runs — where every run timed the same number of steps (else the least decode). Stalls
 * only ever add time, and a stall in one step of a run then costs nothing while another run took that step unstalled.
 */
export function fastestRun(runs: readonly RunTime[]): ScenarioTime {
  if (runs.length === 0) throw new RangeError('the fastest of no runs');
  const prefillSeconds = Math.min(...runs.map((t) => t.prefillSeconds));
  const steps = runs[0].decodeSteps;
  const stepwise = steps !== undefined && steps.length > 0 && runs.every((t) => t.decodeSteps?.length === steps.length);
  const decodeSeconds = stepwise
    ? steps.reduce((sum, _, i) => sum + Math.min(...runs.map((t) => t.decodeSteps![i])), 0)
    : Math.min(...runs.map((t) => t.decodeSeconds));
  return { prefillSeconds, decodeSeconds };
}

/** A model another runtime computes (e.g. llama.cpp), timed beside Tessera's graphs: how to open it for a scenario. */
export interface ExternalModel {
  readonly open: (s: Scenario) => Promise<ScenarioRun>;
}

export type TimedModel = TesseraModel | ExternalModel;

const isExternal = (m: TimedModel): m is ExternalModel => 'open' in m;

/** What `compareModels` measured: per model its rounds and their median; each later model's speed-up over the first. */
export interface Comparison {
  readonly rounds: readonly (readonly ScenarioTime[])[];
  readonly medians: readonly ScenarioTime[];
  /** `speedups[k - 1]`: model k against model 0 (the parent), from the rounds' paired total seconds. */
  readonly speedups: readonly SpeedupInterval[];
}

/**
 * Times several models on one scenario in rounds: each round runs every model once, in alternating order (A B,
 * then B A), so that drift in the machine's speed (frequency, other load) falls on all alike and each round's
 * ratio is a fair sample of the speed-up. Rounds go on until every speed-up's interval is within the protocol's
 * precision (or its rounds or seconds run out).
 *
 * Every round builds each model afresh, warms it up, times it (the fastest of a few runs) and releases it: a speed-up varies from one
 * build of the sessions to the next more than between rounds of one build (one pair, built six times in one
 * process: ×1.50 to ×1.92, each build's rounds within ±3%), so rounds of a single build gave intervals that the
 * next run missed (36 of 45 pairs of ten runs overlapping). Rounds over builds sample what another run would
 * measure — for a model timed alone too (a profile's calibration), whose median is then one over builds — and
 * only one model is held at a time.
 */
export async function compareModels(models: readonly TimedModel[], s: Scenario, o: ProtocolOptions): Promise<Comparison> {
  const rounds: ScenarioTime[][] = models.map(() => []);
  const speedups = () => rounds.slice(1).map((r) => speedupInterval(rounds[0].map(totalSeconds), r.map(totalSeconds)));
  const done = (spent: number) => {
    const n = rounds[0].length;
    if (n < Math.max(2, o.minRounds)) return false;
    if (n >= o.maxRounds || spent >= o.maxSeconds) return true;
    return spent >= (o.minSeconds ?? 0) && speedups().every((i) => preciseEnough(i, o.precision));
  };
  const runnerOf = (m: TimedModel) => (isExternal(m) ? m.open(s) : scenarioRunner(m.config, m.weights, m.arch, s, o.runtime, m.fusedAttention ?? o.fusedAttention ?? fusedAttentionRuns(m.config)));
  // Every model of the comparison is timed the same number of runs a build (the fastest of more runs is faster), set
  // by the first model's first timed run: the parent, as a rule the slowest.
  let timedRuns = o.timedRuns === undefined ? undefined : Math.max(1, o.timedRuns);
  const builtAndTimed = async (m: TimedModel): Promise<{ time: ScenarioTime; seconds: number }> => {
    const r = await runnerOf(m);
    try {
      for (let w = 0; w < Math.max(1, o.warmup); w++) await r.run();
      const runs: RunTime[] = [await r.run()];
      timedRuns ??= runsPerBuild(totalSeconds(runs[0]));
      while (runs.length < timedRuns) runs.push(await r.run());
      return { time: fastestRun(runs), seconds: runs.reduce((a, t) => a + totalSeconds(t), 0) };
    } finally {
      await r.release();
    }
  };
  let spent = 0;
  while (!done(spent)) {
    const order = models.map((_, k) => k);
    if (rounds[0].length % 2 === 1) order.reverse();
    for (const k of order) {
      const { time, seconds } = await builtAndTimed(models[k]);
      rounds[k].push(time);
      spent += seconds;
    }
    o.onRound?.(rounds[0].length);
  }
  return { rounds, medians: rounds.map(medianTime), speedups: models.length > 1 ? speedups() : [] };
}
