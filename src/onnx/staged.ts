import type { ModelConfig } from '../arch/config.js';
import { subBlockParams } from '../arch/params.js';
import { SUB_BLOCKS, type Architecture } from '../arch/variant.js';
import { sourceOf, type ModelWeights, type WeightSource } from '../model/weights.js';
import type { Tensor } from '../util/tensor.js';
import type { DecoderGraphOptions } from './decoder-graph.js';
import { tapName, type TapPoint } from './emit.js';
import type { Runtime } from './runtime.js';
import { DecoderSession, kvBuffersFor, type ForwardResult, type KvBuffers, type KvCache, type ScoreReference, type TokenBatch } from './session.js';

/**
 * A model run in stages: contiguous ranges of layers, each compiled into its own session only while it runs,
 * so that a process holds the weights of one stage at a time, not of the whole model. Every batch passes a
 * stage before the next stage is built; between stages a batch is its residual stream. A model whose weights
 * fit the budget is one stage — one session, as if run whole.
 */
export interface Stage {
  readonly from: number;
  readonly to: number;
  /** The final norm and LM head run in this stage (the last one). */
  readonly head: boolean;
  /** float32 bytes of the stage's weights. */
  readonly bytes: number;
}

const F32 = 4;

/** float32 bytes of each layer of a model's source. */
export function layerBytes(config: ModelConfig, source: Pick<WeightSource, 'architecture'>): number[] {
  return source.architecture.map((b) => SUB_BLOCKS.reduce((s, sub) => s + subBlockParams(config, sub, b[sub]), 0) * F32);
}

/** float32 bytes of the embedding, and of the final norm and LM head. */
export function endBytes(config: ModelConfig): { embed: number; head: number } {
  // The head holds its own copy of the table even when tied: a session owns its initializers.
  const table = config.vocabSize * config.hiddenSize * F32;
  return { embed: table, head: table + config.hiddenSize * F32 };
}

/**
 * Stages for layers [from, L) and the head. The model is cut into greedy contiguous ranges of at most `budget`
 * float32 bytes each (the embedding counting towards the first; a layer larger than the budget is a stage
 * alone; the head joins the last range when it fits), and those starting before `from` are cut to start
 * there: the stages after `from` are the same whatever `from` is, so their sessions can be kept and reused.
 * `lookupOutside`: token ids are embedded before the first stage (StagedDecoder), which holds no table.
 */
export function planStages(config: ModelConfig, source: Pick<WeightSource, 'architecture' | 'numLayers'>, budget: number, from = 0, lookupOutside = false): Stage[] {
  const bytes = layerBytes(config, source);
  const ends = { ...endBytes(config), ...(lookupOutside ? { embed: 0 } : {}) };
  const L = source.numLayers;
  const ranges: { from: number; to: number }[] = [];
  let start = 0;
  let sum = ends.embed;
  for (let i = 0; i < L; i++) {
    if (i > start && sum + bytes[i] > budget) {
      ranges.push({ from: start, to: i });
      [start, sum] = [i, 0];
    }
    sum += bytes[i];
  }
  const headJoins = start < L && sum + ends.head <= budget;
  if (start < L) ranges.push({ from: start, to: L });
  const stages: Stage[] = ranges
    .filter((r) => r.to > from)
    .map((r, k, all) => {
      const lo = Math.max(r.from, from);
      const head = headJoins && k === all.length - 1;
      const layers = bytes.slice(lo, r.to).reduce((a, b) => a + b, 0);
      return { from: lo, to: r.to, head, bytes: layers + (lo === 0 ? ends.embed : 0) + (head ? ends.head : 0) };
    });
  if (!headJoins || stages.length === 0) stages.push({ from: L, to: L, head: true, bytes: ends.head });
  return stages;
}

/** What a staged run computes: the head's output (as `DecoderGraphOptions.logits`) and taps of any layer. */
export interface StagedOptions {
  readonly logits: 'all' | 'last' | 'none' | 'score' | 'nll';
  readonly taps?: readonly TapPoint[];
  /** The first layer: above 0 the inputs are residual streams entering it. */
  readonly fromLayer?: number;
  /** For logits: 'score', the reference of batch `b`. */
  readonly reference?: (b: number) => ScoreReference;
  /** Sessions to reuse across runs (kept by the caller), instead of building and releasing them here. */
  readonly sessions?: SessionCache;
  /** Asked before each batch; true stops the run by throwing `Stopped` (an interrupt reaching a worker thread). */
  readonly stopped?: () => boolean;
}

/** Thrown when a run's `stopped` said so: the caller asked for it, so it is no failure. */
export class Stopped extends Error {
  override readonly name = 'Stopped';
  constructor() {
    super('stopped on request');
  }
}

/**
 * Runs batches through a model stage by stage. `onTaps` receives each batch's taps as their stage produces
 * them; `onResult` receives each batch's result from the last stage (logits, or KL and NLL for 'score'; for
 * logits: 'none', the residual stream after the last layer as a tap).
 */
export async function runStaged(
  config: ModelConfig,
  source: WeightSource,
  runtime: Runtime,
  inputs: readonly (TokenBatch | Tensor)[],
  o: StagedOptions,
  onResult: (b: number, r: ForwardResult) => void | Promise<void>,
  onTaps: (b: number, taps: ReadonlyMap<string, Tensor>) => void = () => {},
): Promise<void> {
  const from = o.fromLayer ?? 0;
  // Without logits, the head's stage has nothing to do.
  const stages = planStages(config, source, runtime.stageBytes, from).filter((s) => o.logits !== 'none' || s.from < s.to);
  const streams: (TokenBatch | Tensor)[] = [...inputs];
  for (const [k, stage] of stages.entries()) {
    const last = k === stages.length - 1;
    const taps = (o.taps ?? []).filter((t) => t.layer >= stage.from && (t.layer < stage.to || (t.layer === stage.to && last)));
    const options: DecoderGraphOptions = {
      fromLayer: stage.from,
      toLayer: stage.to,
      logits: last ? o.logits : 'none',
      taps,
    };
    if (o.sessions !== undefined && o.sessions.source !== source) throw new Error('a session cache serves the source it was made for');
    const runBatches = async (session: DecoderSession) => {
      for (let b = 0; b < streams.length; b++) {
        if (o.stopped?.()) throw new Stopped();
        const r = await session.run(streams[b], new Map(), last && (o.logits === 'score' || o.logits === 'nll') ? o.reference!(b) : undefined);
        if (taps.length > 0) onTaps(b, r.taps);
        if (last) await onResult(b, r);
        else streams[b] = r.taps.get(tapName({ layer: stage.to, site: 'residual' }))!;
      }
    };
    if (o.sessions !== undefined) await o.sessions.use(config, options, stage.bytes, runtime, runBatches);
    else {
      const session = await DecoderSession.create(config, source, options, runtime);
      try {
        await runBatches(session);
      } finally {
        await session.release();
      }
    }
  }
}

/**
 * What a scoring worker keeps built of the parent: the head, and two stages of the last layers but at most
 * half of the layers (of a small model, where every worker could otherwise hold a copy of it all).
 */
export function suffixCacheBytes(config: ModelConfig, architecture: Architecture, stageBytes: number): number {
  const layers = layerBytes(config, { architecture }).reduce((a, b) => a + b, 0);
  return endBytes(config).head + Math.min(2 * stageBytes, layers / 2);
}

/**
 * Stage sessions of one source kept between staged runs within a byte budget: a worker scoring many
 * candidates builds the parent's later stages once. Candidates run from some layer to the head, so a later
 * stage serves more of them than an earlier one: the cache keeps the latest stages that fit, releasing an
 * earlier stage to make room for a later one, never the reverse (a least-recently-used cache would release
 * every stage of a suffix longer than the budget before it is used again). Not for concurrent use.
 */
export class SessionCache {
  private readonly entries = new Map<string, { session: DecoderSession; bytes: number; from: number }>();

  /**
   * `building` runs each session build: scoring workers pass one that lets one build at a time across threads,
   * since a build holds about twice the stage's weights (its file's tensor, onnxruntime's copy and its packed
   * form) and two workers building their heads at once was the peak of scoring a 1B parent.
   */
  constructor(
    readonly source: WeightSource,
    private readonly budget: number,
    private readonly building: <T>(build: () => Promise<T>) => Promise<T> = (build) => build(),
  ) {}

  /** Runs `use` on the session of a stage, built unless kept; kept afterwards when the budget allows. */
  async use(config: ModelConfig, options: DecoderGraphOptions, bytes: number, runtime: Runtime, use: (session: DecoderSession) => Promise<void>): Promise<void> {
    const key = JSON.stringify(options);
    const hit = this.entries.get(key);
    if (hit !== undefined) return use(hit.session);
    const from = options.fromLayer ?? 0;
    await this.makeRoom(bytes, from);
    const session = await this.building(() => DecoderSession.create(config, this.source, options, runtime));
    if (this.held + bytes <= this.budget) {
      this.entries.set(key, { session, bytes, from });
      return use(session);
    }
    try {
      await use(session);
    } finally {
      await session.release();
    }
  }

  /** The first layers of the stages kept, in order. */
  get kept(): number[] {
    return [...this.entries.values()].map((e) => e.from).sort((a, b) => a - b);
  }

  private get held(): number {
    return [...this.entries.values()].reduce((s, e) => s + e.bytes, 0);
  }

  /** Releases kept stages earlier than `from`, earliest first, until `bytes` more fit (or none is left to release). */
  private async makeRoom(bytes: number, from: number): Promise<void> {
    const earlier = [...this.entries].filter(([, e]) => e.from < from).sort(([, a], [, b]) => a.from - b.from);
    for (const [key, e] of earlier) {
      if (this.held + bytes <= this.budget) return;
      this.entries.delete(key);
      await e.session.release();
    }
  }

  async clear(): Promise<void> {
    for (const e of this.entries.values()) await e.session.release();
    this.entries.clear();
  }
}

/** What runs a decoder forward: one session, or a chain of stage sessions. */
export type Decoder = Pick<DecoderSession, 'config' | 'options' | 'run' | 'emptyCache' | 'kvBuffers' | 'release'>;

/**
 * A decoder kept whole as a chain of stage sessions, built one stage at a time: running it costs what one
 * session of the whole model costs (the chain passes each call's residual stream on), but building it never
 * holds more than one stage's weights twice. For calls that must reach every layer at once — generation,
 * K/V-cached decoding, timing. A model within the stage budget is a single session.
 *
 * Token ids are looked up in the source's embedding here, row by row, not in a session: a session would hold
 * the whole table in float32 beside the head's own copy (a gigabyte each at a 128k vocabulary).
 */
export class StagedDecoder implements Decoder {
  private constructor(
    readonly config: ModelConfig,
    readonly options: DecoderGraphOptions,
    private readonly source: WeightSource,
    private readonly sessions: readonly DecoderSession[],
    private readonly runtime: Runtime,
  ) {}

  /** `o.repeated`: see `SessionUse`. */
  static async create(config: ModelConfig, weights: ModelWeights | WeightSource, options: Pick<DecoderGraphOptions, 'logits' | 'kvCache' | 'fusedAttention' | 'kvBuffer'>, runtime: Runtime, o: { repeated?: boolean } = {}): Promise<StagedDecoder> {
    const source = sourceOf(weights);
    const stages = planStages(config, source, runtime.stageBytes, 0, true);
    const sessions: DecoderSession[] = new Array(stages.length);
    // The head's stage first: building it holds its table three times over (as read, as onnxruntime loads it, as
    // packed), which with every layer already built was the peak (7.0 GB for a 1B parent, 5.8 GB once built).
    const order = stages.map((_, k) => k).reverse();
    try {
      for (const k of order) {
        const last = k === stages.length - 1;
        sessions[k] = await DecoderSession.create(config, source, { ...options, fromLayer: stages[k].from, toLayer: stages[k].to, hiddenInput: true, logits: last ? options.logits : 'none' }, runtime, o);
      }
    } catch (e) {
      for (const s of sessions) if (s !== undefined) await s.release();
      throw e;
    }
    return new StagedDecoder(config, options, source, sessions, runtime);
  }

  emptyCache(batch: number, kvHeadsOf: (layer: number) => number): Map<number, KvCache> {
    return new Map(this.sessions.flatMap((s) => [...s.emptyCache(batch, kvHeadsOf)]));
  }

  /** K/V buffers for every stage's cached layers (a decoder created with `kvBuffer`), where the runtime keeps them. */
  kvBuffers(batch: number, capacity: number, kvHeadsOf: (layer: number) => number): Promise<KvBuffers> {
    return kvBuffersFor(this.runtime, batch, capacity, this.config.headDim, new Map(this.sessions.flatMap((s) => s.cachedLayers.map((i): [number, number] => [i, kvHeadsOf(i)]))));
  }

  async run(input: TokenBatch | Tensor, past: ReadonlyMap<number, KvCache> | KvBuffers = new Map(), reference?: ScoreReference): Promise<ForwardResult> {
    let stream: Tensor = 'ids' in input ? { data: this.source.embedRows(input.ids), shape: [input.batch, input.seq, this.config.hiddenSize] } : input;
    const present = new Map<number, KvCache>();
    const taps = new Map<string, Tensor>();
    for (const [k, s] of this.sessions.entries()) {
      const r = await s.run(stream, past, reference);
      for (const [i, kv] of r.present) present.set(i, kv);
      if (k === this.sessions.length - 1) return { ...r, present, taps };
      stream = r.taps.get(tapName({ layer: s.options.toLayer!, site: 'residual' }))!;
    }
    throw new Error('a decoder has at least one stage');
  }

  async release(): Promise<void> {
    for (const s of this.sessions) await s.release();
  }
}

/**
 * Runs `work` while holding a lock shared by threads (an Int32Array over a SharedArrayBuffer, 0 when free): one
 * holder at a time; the others look again every 20 ms (what they wait for takes seconds).
 */
export async function holding<T>(lock: Int32Array, work: () => Promise<T>): Promise<T> {
  while (Atomics.compareExchange(lock, 0, 0, 1) !== 0) await new Promise((resolve) => setTimeout(resolve, 20));
  try {
    return await work();
  } finally {
    Atomics.store(lock, 0, 0);
  }
}
