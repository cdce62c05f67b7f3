import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import type { ModelConfig } from '../arch/config.js';
import type { ModelWeights } from '../model/weights.js';
import type { Tensor } from '../util/tensor.js';
import {
  attnOutName,
  buildDecoderGraph,
  ffnOutName,
  HIDDEN_IN,
  hiddenName,
  INPUT_IDS,
  LOGITS,
  midName,
  attnCtxName,
  ffnActName,
  KL,
  NLL,
  REFERENCE_LOGPROBS,
  TARGETS,
  pastKeyName,
  pastValueName,
  presentKeyName,
  presentValueName,
  type DecoderGraphOptions,
} from './decoder-graph.js';

export interface RuntimeOptions {
  /** onnxruntime intra-op threads; keep workers × threads ≤ cores. */
  readonly threads?: number;
  /** Hand the graph to onnxruntime through a file with external data even when it would fit in memory. */
  readonly viaFile?: boolean;
}

// Protobuf refuses messages over 2 GiB; leave room for the graph itself.
const IN_MEMORY_LIMIT_BYTES = 1.5 * 2 ** 30;

/** A batch of equal-length token sequences, row-major [batch, seq]. */
export interface TokenBatch {
  readonly ids: Int32Array;
  readonly batch: number;
  readonly seq: number;
}

/** The residual stream around one layer's two sub-blocks, each [batch, seq, hidden]. */
export interface SubBlockActivations {
  /** The attention sub-block's input (= the residual stream entering the layer). */
  readonly attentionInput: Tensor;
  /** What attention adds to the stream; absent for a no-op attention. */
  readonly attentionOutput?: Tensor;
  /** The FFN sub-block's input (= stream after attention). */
  readonly ffnInput: Tensor;
  /** What the FFN adds to the stream; absent for a no-op FFN. */
  readonly ffnOutput?: Tensor;
}

/** One layer's K/V cache, each [batch, kvHeads, positions, headDim]. */
export interface KvCache {
  readonly key: Tensor;
  readonly value: Tensor;
}

export interface ForwardResult {
  /** [batch, seq, vocab], or [batch, vocab] for logits: 'last'. */
  readonly logits?: Tensor;
  readonly hidden: ReadonlyMap<number, Tensor>;
  readonly subBlocks: ReadonlyMap<number, SubBlockActivations>;
  /** With kvCache: each cached layer's K/V including this call's positions, to pass back as `past`. */
  readonly present: ReadonlyMap<number, KvCache>;
  /** attentionContextOf / ffnActivationOf outputs by layer. */
  readonly attentionContext: ReadonlyMap<number, Tensor>;
  readonly ffnActivation: ReadonlyMap<number, Tensor>;
  /** logits: 'score': per-position KL from the reference and NLL of the targets, [batch, seq]. */
  readonly kl?: Tensor;
  readonly nll?: Tensor;
}

/** What a logits: 'score' graph compares against: reference log-probabilities [batch, seq, vocab] and target ids [batch, seq]. */
export interface ScoreReference {
  readonly logprobs: Tensor;
  readonly targets: Int32Array;
}

/**
 * onnxruntime-node cannot wrap memory of a SharedArrayBuffer (its native side aborts the process), so
 * shared arrays are copied into an ordinary buffer first.
 */
export function ortFloat32(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data.buffer instanceof SharedArrayBuffer ? data.slice() : data, [...dims]);
}

export function ortInt32(data: Int32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('int32', data.buffer instanceof SharedArrayBuffer ? data.slice() : data, [...dims]);
}

export function sessionOptions(runtime: RuntimeOptions): ort.InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: runtime.threads ?? 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
}

/** A decoder (or a layer range of one) compiled into an onnxruntime session. */
export class DecoderSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly config: ModelConfig,
    readonly options: DecoderGraphOptions,
  ) {}

  static async create(config: ModelConfig, weights: ModelWeights, options: DecoderGraphOptions = {}, runtime: RuntimeOptions = {}): Promise<DecoderSession> {
    const graph = buildDecoderGraph(config, weights, options);
    const opts = sessionOptions(runtime);
    if (!runtime.viaFile && graph.initializerBytes < IN_MEMORY_LIMIT_BYTES) {
      return new DecoderSession(await ort.InferenceSession.create(graph.toBytes(), opts), config, options);
    }
    const dir = mkdtempSync(join(tmpdir(), 'tessera-graph-'));
    try {
      graph.writeTo(join(dir, 'model.onnx'));
      return new DecoderSession(await ort.InferenceSession.create(join(dir, 'model.onnx'), opts), config, options);
    } finally {
      // onnxruntime has read (or mapped) the files by now; an unlinked mapping stays valid on Linux.
      rmSync(dir, { recursive: true, force: true });
    }
  }

  get startsWithTokens(): boolean {
    return (this.options.fromLayer ?? 0) === 0 && !this.options.hiddenInput;
  }

  /** The layers that take and return a K/V cache (GQA layers of a kvCache graph). */
  get cachedLayers(): number[] {
    return this.session.inputNames.filter((n) => n.startsWith('past_key.')).map((n) => Number(n.slice('past_key.'.length)));
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
  async run(input: TokenBatch | Tensor, past: ReadonlyMap<number, KvCache> = new Map(), reference?: ScoreReference): Promise<ForwardResult> {
    const feeds: Record<string, ort.Tensor> = {};
    if (this.options.logits === 'score') {
      if (reference === undefined) throw new Error('a scoring graph needs reference log-probabilities and targets');
      const [b, t] = reference.logprobs.shape;
      feeds[REFERENCE_LOGPROBS] = ortFloat32(reference.logprobs.data, reference.logprobs.shape);
      feeds[TARGETS] = ortInt32(reference.targets, [b, t]);
    }
    for (const i of this.cachedLayers) {
      const kv = past.get(i);
      if (kv === undefined) throw new Error(`layer ${i} needs its past K/V (use emptyCache() for the first call)`);
      feeds[pastKeyName(i)] = ortFloat32(kv.key.data, kv.key.shape);
      feeds[pastValueName(i)] = ortFloat32(kv.value.data, kv.value.shape);
    }
    if ('ids' in input) {
      if (!this.startsWithTokens) throw new Error('this partial graph takes a hidden state, not token ids');
      feeds[INPUT_IDS] = ortInt32(input.ids, [input.batch, input.seq]);
    } else {
      if (this.startsWithTokens) throw new Error('this graph takes token ids, not a hidden state');
      feeds[HIDDEN_IN] = ortFloat32(input.data, input.shape);
    }
    const out = await this.session.run(feeds);
    const get = (name: string): Tensor | undefined => {
      const t = out[name];
      return t === undefined ? undefined : { data: t.data as Float32Array, shape: t.dims.map(Number) };
    };
    const hidden = new Map<number, Tensor>();
    for (const name of Object.keys(out)) {
      const m = /^hidden\.(\d+)$/.exec(name);
      if (m) hidden.set(Number(m[1]), get(name)!);
    }
    const subBlocks = new Map<number, SubBlockActivations>();
    for (const i of this.options.subBlocksOf ?? []) {
      subBlocks.set(i, {
        attentionInput: get(hiddenName(i))!,
        attentionOutput: get(attnOutName(i)),
        ffnInput: get(midName(i))!,
        ffnOutput: get(ffnOutName(i)),
      });
    }
    const present = new Map<number, KvCache>();
    for (const i of this.cachedLayers) present.set(i, { key: get(presentKeyName(i))!, value: get(presentValueName(i))! });
    const byLayer = (layers: readonly number[] | undefined, name: (i: number) => string) => new Map((layers ?? []).map((i) => [i, get(name(i))!]));
    return {
      logits: get(LOGITS),
      hidden,
      subBlocks,
      present,
      attentionContext: byLayer(this.options.attentionContextOf, attnCtxName),
      ffnActivation: byLayer(this.options.ffnActivationOf, ffnActName),
      kl: get(KL),
      nll: get(NLL),
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
