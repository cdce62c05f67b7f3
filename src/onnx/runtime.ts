import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import type { GraphBuilder } from './graph-builder.js';
import { removeLeftovers } from '../util/leftovers.js';

/** The execution providers Tessera runs graphs on. */
export type ExecutionProvider = 'cpu';

/** Where a runtime's sessions leave their outputs: in host memory, or in device buffers for the next call. */
export type OutputLocation = 'cpu';

/** A runtime as plain data, so it can cross into worker threads. */
export interface RuntimeSpec {
  readonly provider: ExecutionProvider;
  /** onnxruntime intra-op threads; keep workers × threads ≤ cores. */
  readonly threads: number;
  readonly outputs: OutputLocation;
  /**
   * float32 bytes of weights one session may hold: a model larger than this runs in stages of layers (see
   * onnx/staged.ts), so memory follows the stage, not the model.
   */
  readonly stageBytes: number;
}

/**
 * The default stage: the sessions a scoring worker keeps built are two stages and the head, so this bounds a
 * worker's memory; 256 MiB keeps every command at the SmolLM2-135M shape under 2 GB (bench:scale).
 */
export const DEFAULT_STAGE_BYTES = 256 * 2 ** 20;

/**
 * Graphs with more weights than this reach onnxruntime through a file with external data: handed over in
 * memory, a graph is held three times while the session is made (the weights, the serialised message,
 * onnxruntime's parsed copy); from a file, onnxruntime reads the weights straight into its own tensors.
 * (Protobuf also refuses messages over 2 GiB.)
 */
const IN_MEMORY_LIMIT_BYTES = 64 * 2 ** 20;

/** How a session will be run. */
export interface SessionUse {
  /**
   * Run again and again on inputs of one shape (a training step): onnxruntime's memory arena keeps what one run
   * allocated for the next instead of returning it and faulting it in afresh — training steps of the shared
   * models 15-20% faster. Sessions used once or rarely go without it, so their memory goes back after each run.
   */
  readonly repeated?: boolean;
}

/** Temporary graph folders: `tessera-graph-<pid>-<random>`. */
export const GRAPH_DIR = /^tessera-graph-(\d+)-/;
let cleanedGraphLeftovers = false;

/**
 * Where Tessera's graphs execute: the execution provider, its threads and where outputs live. It is the one
 * place that creates onnxruntime sessions, so a new provider is a change here, not in every stage.
 */
export class Runtime {
  constructor(readonly spec: RuntimeSpec) {}

  get threads(): number {
    return this.spec.threads;
  }

  get stageBytes(): number {
    return this.spec.stageBytes;
  }

  /** The same runtime with another thread count (e.g. one thread per worker). */
  withThreads(threads: number): Runtime {
    return new Runtime({ ...this.spec, threads });
  }

  /** With `o.repeated`, see `SessionUse`. */
  sessionOptions(o: SessionUse = {}): ort.InferenceSession.SessionOptions {
    return {
      executionProviders: [this.spec.provider],
      intraOpNumThreads: this.spec.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      // Without the arena (a session not `repeated`), memory a run used goes back when it ends instead of staying with each session.
      enableCpuMemArena: o.repeated === true,
      // Idle intra-op threads sleep instead of spinning: a staged model's sessions, a parent beside its child, or
      // llama.cpp timed in the same rounds run one after another, and each session's spinning threads took the
      // cores from the next (a SmolLM2-135M-shaped decode step: 280-420 ms spinning, 76-83 ms not, on 2 cores).
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    };
  }

  /**
   * A session for a graph built straight into a temporary file (`build` gets its path; build it as `scratch`):
   * its weights never sit in memory all at once (see GraphBuilder.streamingTo).
   */
  async sessionBuiltAt(build: (path: string) => GraphBuilder, o: SessionUse = {}): Promise<ort.InferenceSession> {
    if (!cleanedGraphLeftovers) {
      // A run killed while building a session leaves its graph (gigabytes for a real model) in the temp directory.
      removeLeftovers(tmpdir(), GRAPH_DIR);
      cleanedGraphLeftovers = true;
    }
    const dir = mkdtempSync(join(tmpdir(), `tessera-graph-${process.pid}-`));
    try {
      const path = join(dir, 'model.onnx');
      build(path).writeTo(path);
      return await ort.InferenceSession.create(path, this.sessionOptions(o));
    } finally {
      // onnxruntime has read (or mapped) the files by now; an unlinked mapping stays valid on Linux.
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** A session for a graph: handed over in memory, or through a temporary file with external data when its weights are large. */
  async session(graph: GraphBuilder, o: SessionUse = {}): Promise<ort.InferenceSession> {
    if (graph.initializerBytes < IN_MEMORY_LIMIT_BYTES) return ort.InferenceSession.create(graph.toBytes(), this.sessionOptions(o));
    return this.sessionBuiltAt(() => graph, o);
  }
}

/** The CPU runtime with `threads` intra-op threads. */
export const cpuRuntime = (threads: number, stageBytes = DEFAULT_STAGE_BYTES) => new Runtime({ provider: 'cpu', threads, outputs: 'cpu', stageBytes });

/**
 * onnxruntime-node cannot wrap memory of a SharedArrayBuffer (its native side aborts the process), so
 * shared arrays are copied into an ordinary buffer first.
 */
export function float32Tensor(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data.buffer instanceof SharedArrayBuffer ? data.slice() : data, [...dims]);
}

export function int32Tensor(data: Int32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('int32', data.buffer instanceof SharedArrayBuffer ? data.slice() : data, [...dims]);
}
