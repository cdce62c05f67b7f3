import ort from 'onnxruntime-node';
import type { ModelConfig } from '../arch/config.js';
import { sourceOf, type ModelWeights, type WeightSource } from '../model/weights.js';
import type { Tensor } from '../util/tensor.js';
import { buildDecoderGraph, cachedLayersOf, HIDDEN_IN, INPUT_IDS, KL, LOGITS, NLL, PAST_LENGTH, REFERENCE_LOGPROBS, TARGETS, type DecoderGraphOptions } from './decoder-graph.js';
import { parseTapName, pastKeyName, pastValueName, presentKeyName, presentValueName, tapName, type TapPoint } from './emit.js';
import { DataType, GraphBuilder } from './graph-builder.js';
import { float32Tensor, int32Tensor, type Runtime } from './runtime.js';

/** A batch of equal-length token sequences, row-major [batch, seq]. */
export interface TokenBatch {
  readonly ids: Int32Array;
  readonly batch: number;
  readonly seq: number;
}

/** One layer's K/V cache, each [batch, kvHeads, positions, headDim]. */
export interface KvCache {
  readonly key: Tensor;
  readonly value: Tensor;
}

type KvPair = { readonly key: ort.Tensor; readonly value: ort.Tensor };

/**
 * K/V caches that stay in onnxruntime for a whole generation (sessions built with `kvBuffer`): per cached layer one
 * key and one value buffer [batch, kvHeads, capacity, headDim], and the attention kernel writes each call's
 * positions after the `length` it is told are held.
 *
 * Where they live follows the runtime. In host memory (`inPlace`) each buffer is passed as input and as
 * preallocated output alike, so the kernel appends where they are. On a device (a runtime that keeps outputs in
 * gpu-buffers) the buffers start as zeros made there, and each call's presents, left there, become the next call's
 * pasts: no cache crosses to the host, though the kernel copies it on the device (bound as the output of the call
 * that reads it, a device buffer was not written: WebGPU, onnxruntime 1.30, checked against the CPU).
 */
export class KvBuffers {
  private held = 0;

  private constructor(
    readonly batch: number,
    readonly capacity: number,
    private readonly layers: Map<number, KvPair>,
    readonly inPlace: boolean,
    /** The session whose outputs the first device buffers are: released with them, since its device memory holds them. */
    private readonly maker?: ort.InferenceSession,
  ) {}

  /** Buffers in host memory, written in place. */
  static allocate(batch: number, capacity: number, headDim: number, kvHeads: ReadonlyMap<number, number>): KvBuffers {
    const buffer = (heads: number) => new ort.Tensor('float32', new Float32Array(batch * heads * capacity * headDim), [batch, heads, capacity, headDim]);
    return new KvBuffers(batch, capacity, new Map([...kvHeads].map(([i, heads]) => [i, { key: buffer(heads), value: buffer(heads) }])), true);
  }

  /** Buffers in `runtime`'s device memory, zeros made there by one small session (nothing of their size crosses). */
  static async onDevice(batch: number, capacity: number, headDim: number, kvHeads: ReadonlyMap<number, number>, runtime: Runtime): Promise<KvBuffers> {
    if (kvHeads.size === 0) return new KvBuffers(batch, capacity, new Map(), false);
    const g = new GraphBuilder('tessera_zeros');
    const feeds: Record<string, ort.Tensor> = {};
    for (const [i, heads] of kvHeads) {
      const shape = g.input(`shape.${i}`, DataType.INT64, [4]);
      feeds[shape] = new ort.Tensor('int64', BigInt64Array.from([batch, heads, capacity, headDim].map(BigInt)), [4]);
      for (const name of [`key.${i}`, `value.${i}`]) g.output(g.node('Expand', [g.float(0), shape], {}, name), DataType.FLOAT, ['batch', heads, 'capacity', headDim]);
    }
    const zeros = await runtime.session(g, { kept: g.outputNames });
    const out = await zeros.run(feeds);
    const layers = new Map([...kvHeads.keys()].map((i): [number, KvPair] => [i, { key: out[`key.${i}`], value: out[`value.${i}`] }]));
    return new KvBuffers(batch, capacity, layers, false, zeros);
  }

  get length(): number {
    return this.held;
  }

  layer(i: number): KvPair {
    const kv = this.layers.get(i);
    if (kv === undefined) throw new Error(`layer ${i} has no K/V buffer`);
    return kv;
  }

  /** A call's presents as layer `i`'s buffers from now on (buffers not `inPlace`); the ones they replace are freed. */
  replace(i: number, next: KvPair): void {
    const old = this.layer(i);
    this.layers.set(i, next);
    if (old.key !== next.key) old.key.dispose();
    if (old.value !== next.value) old.value.dispose();
  }

  /** Positions appended by a call of `seq` new tokens; refuses to run past the capacity. */
  advance(seq: number): void {
    this.check(seq);
    this.held += seq;
  }

  /** Refuses a call of `batch` rows and `seq` new positions that these buffers cannot hold. */
  check(seq: number, batch = this.batch): void {
    if (batch !== this.batch) throw new Error(`K/V buffers for batch ${this.batch}, given a batch of ${batch}`);
    if (this.held + seq > this.capacity) throw new Error(`K/V buffers hold ${this.capacity} positions; ${this.held} + ${seq} do not fit`);
  }

  /** Empty again, for a new generation (the stale positions are never read: the kernel reads `length` of them). */
  reset(): void {
    this.held = 0;
  }

  /** Frees device buffers now rather than when they are collected. */
  async dispose(): Promise<void> {
    if (this.inPlace) return;
    for (const kv of this.layers.values()) (kv.key.dispose(), kv.value.dispose());
    await this.maker?.release();
  }
}

/** K/V buffers where `runtime` keeps a session's kept outputs: in host memory, or on its device. */
export const kvBuffersFor = (runtime: Runtime, batch: number, capacity: number, headDim: number, kvHeads: ReadonlyMap<number, number>): Promise<KvBuffers> =>
  runtime.keepsOnDevice ? KvBuffers.onDevice(batch, capacity, headDim, kvHeads, runtime) : Promise.resolve(KvBuffers.allocate(batch, capacity, headDim, kvHeads));

export interface ForwardResult {
  /** [batch, seq, vocab], or [batch, vocab] for logits: 'last'. */
  readonly logits?: Tensor;
  /** The requested taps by `tapName`; a tap the layer does not have (a no-op's output) is absent. */
  readonly taps: ReadonlyMap<string, Tensor>;
  /** With kvCache: each cached layer's K/V including this call's positions, to pass back as `past` (none with K/V buffers: they hold them). */
  readonly present: ReadonlyMap<number, KvCache>;
  /** logits: 'score': per-position KL from the reference and NLL of the targets, [batch, seq]; 'nll': the NLL alone. */
  readonly kl?: Tensor;
  readonly nll?: Tensor;
}

/** One tap of a forward result, or undefined when the layer has no such tensor. */
export const tapOf = (r: ForwardResult, t: TapPoint): Tensor | undefined => r.taps.get(tapName(t));

/**
 * What a logits: 'score' graph compares against: reference log-probabilities [batch, seq, vocab] and target
 * ids [batch, seq]; a logits: 'nll' graph takes the targets alone.
 */
export interface ScoreReference {
  readonly logprobs?: Tensor;
  readonly targets: Int32Array;
}

/** A decoder (or a layer range of one) compiled into an onnxruntime session. */
export class DecoderSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly config: ModelConfig,
    readonly options: DecoderGraphOptions,
    private readonly runtime: Runtime,
  ) {}

  /** `o.repeated`: see `SessionUse`. */
  static async create(config: ModelConfig, weights: ModelWeights | WeightSource, options: DecoderGraphOptions, runtime: Runtime, o: { inMemory?: boolean; repeated?: boolean } = {}): Promise<DecoderSession> {
    // K/V buffers' presents stay where the runtime keeps them (see KvBuffers); every other output comes to the host.
    const kept = options.kvBuffer ? cachedLayersOf(config, sourceOf(weights).architecture, options).flatMap((i) => [presentKeyName(i), presentValueName(i)]) : [];
    const use = { kept, repeated: o.repeated };
    // Built straight into a file: the stage's float32 weights are never all in memory beside onnxruntime's copy.
    const session = o.inMemory ? await runtime.session(buildDecoderGraph(config, weights, options), use) : await runtime.sessionBuiltAt((path) => buildDecoderGraph(config, weights, options, { file: path, scratch: true }), use);
    return new DecoderSession(session, config, options, runtime);
  }

  get startsWithTokens(): boolean {
    return (this.options.fromLayer ?? 0) === 0 && !this.options.hiddenInput;
  }

  /** The layers that take and return a K/V cache (the caching layers of a kvCache graph). */
  get cachedLayers(): number[] {
    return this.session.inputNames.filter((n) => n.startsWith('past_key.')).map((n) => Number(n.slice('past_key.'.length)));
  }

  /** K/V buffers for every cached layer, for a session built with `kvBuffer`, where its runtime keeps them. */
  kvBuffers(batch: number, capacity: number, kvHeadsOf: (layer: number) => number): Promise<KvBuffers> {
    return kvBuffersFor(this.runtime, batch, capacity, this.config.headDim, new Map(this.cachedLayers.map((i) => [i, kvHeadsOf(i)])));
  }

  /** Whether this session computes the model's output (so it advances K/V buffers: a staged model's last stage). */
  private get endsModel(): boolean {
    return (this.options.toLayer ?? this.config.numLayers) === this.config.numLayers && this.options.logits !== 'none';
  }

  /** An empty cache for every cached layer: the `past` of a first (prefill) call. */
  emptyCache(batch: number, kvHeadsOf: (layer: number) => number): Map<number, KvCache> {
    const D = this.config.headDim;
    return new Map(this.cachedLayers.map((i) => {
      const shape = [batch, kvHeadsOf(i), 0, D];
      return [i, { key: { data: new Float32Array(0), shape }, value: { data: new Float32Array(0), shape } }];
    }));
  }

  /**
   * Runs token ids (full graphs) or a residual stream [batch, seq, hidden] (partial graphs); kvCache
   * graphs also take every cached layer's past K/V.
   */
  async run(input: TokenBatch | Tensor, past: ReadonlyMap<number, KvCache> | KvBuffers = new Map(), reference?: ScoreReference): Promise<ForwardResult> {
    const feeds: Record<string, ort.Tensor> = {};
    const buffers = past instanceof KvBuffers ? past : null;
    if ((buffers !== null) !== (this.options.kvBuffer ?? false)) throw new Error(this.options.kvBuffer ? 'a kvBuffer session takes KvBuffers as its past' : 'KvBuffers need a session built with kvBuffer');
    if (this.options.logits === 'score' || this.options.logits === 'nll') {
      if (reference === undefined) throw new Error(`a logits: '${this.options.logits}' graph needs targets`);
      const [b, t] = 'ids' in input ? [input.batch, input.seq] : input.shape;
      feeds[TARGETS] = int32Tensor(reference.targets, [b, t]);
      if (this.options.logits === 'score') {
        if (reference.logprobs === undefined) throw new Error('a scoring graph needs reference log-probabilities');
        feeds[REFERENCE_LOGPROBS] = float32Tensor(reference.logprobs.data, reference.logprobs.shape);
      }
    }
    // Outputs onnxruntime allocates (null), and with K/V buffers the presents it writes into the pasts' memory.
    const fetches: Record<string, ort.Tensor | null> = Object.fromEntries(this.session.outputNames.map((n) => [n, null]));
    if (buffers !== null) {
      const [batch, seq] = 'ids' in input ? [input.batch, input.seq] : input.shape;
      buffers.check(seq, batch);
      if (this.cachedLayers.length > 0) feeds[PAST_LENGTH] = new ort.Tensor('int64', BigInt64Array.of(BigInt(buffers.length)), []);
      for (const i of this.cachedLayers) {
        const kv = buffers.layer(i);
        feeds[pastKeyName(i)] = kv.key;
        feeds[pastValueName(i)] = kv.value;
        if (buffers.inPlace) [fetches[presentKeyName(i)], fetches[presentValueName(i)]] = [kv.key, kv.value];
      }
    } else {
      for (const i of this.cachedLayers) {
        const kv = (past as ReadonlyMap<number, KvCache>).get(i);
        if (kv === undefined) throw new Error(`layer ${i} needs its past K/V (use emptyCache() for the first call)`);
        feeds[pastKeyName(i)] = float32Tensor(kv.key.data, kv.key.shape);
        feeds[pastValueName(i)] = float32Tensor(kv.value.data, kv.value.shape);
      }
    }
    if ('ids' in input) {
      if (!this.startsWithTokens) throw new Error('this partial graph takes a hidden state, not token ids');
      feeds[INPUT_IDS] = int32Tensor(input.ids, [input.batch, input.seq]);
    } else {
      if (this.startsWithTokens) throw new Error('this graph takes token ids, not a hidden state');
      feeds[HIDDEN_IN] = float32Tensor(input.data, input.shape);
    }
    const out = await this.session.run(feeds, fetches);
    if (buffers !== null && !buffers.inPlace) for (const i of this.cachedLayers) buffers.replace(i, { key: out[presentKeyName(i)], value: out[presentValueName(i)] });
    if (buffers !== null && this.endsModel) buffers.advance('ids' in input ? input.seq : input.shape[1]);
    const get = (name: string): Tensor | undefined => {
      const t = out[name];
      return t === undefined ? undefined : { data: t.data as Float32Array, shape: t.dims.map(Number) };
    };
    const taps = new Map<string, Tensor>();
    for (const name of this.session.outputNames) if (parseTapName(name) !== null) taps.set(name, get(name)!);
    const present = new Map<number, KvCache>();
    if (buffers === null) for (const i of this.cachedLayers) present.set(i, { key: get(presentKeyName(i))!, value: get(presentValueName(i))! });
    return { logits: get(LOGITS), taps, present, kl: get(KL), nll: get(NLL) };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
