import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { DataType, GraphBuilder } from './graph-builder.js';
import { fail } from '../util/errors.js';
import { removeLeftovers } from '../util/leftovers.js';
import type { ExecutionProvider } from './providers.js';

export { EXECUTION_PROVIDERS, type ExecutionProvider } from './providers.js';

/**
 * Where a runtime's sessions leave the outputs they are asked to keep (K/V caches, which the next call takes
 * back): in host memory, or in the device's buffers, so a decode step moves no cache between host and device.
 */
export type OutputLocation = 'cpu' | 'gpu-buffer';

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
   * Run again and again on inputs of one shape (a training step, a timed model): onnxruntime's memory arena keeps
   * what one run allocated for the next instead of returning it and faulting it in afresh — training steps of the
   * shared models 15-20% faster. Whole-model timings need it to repeat: under the CLI's fixed 1 MiB mmap threshold
   * (see cli/allocator.ts) each run's larger tensors were fresh mappings, and some builds of a model ran 2.2x slower
   * throughout (stories260K's x1.5 child, batch-8 prefill: 8.1 ms against 3.6 in 11 of 30 rounds of one process).
   * Sub-block stacks, timed as the median of many calls of one session, go without: with it, their decode ran
   * 1.3-2.7x slow in some processes (stories260K's gqa4 stack at batch-8: 2.1 and 4.6 ms against 1.6-1.8).
   * Sessions used once or rarely go without it, so their memory goes back after each run.
   */
  readonly repeated?: boolean;
  /** Outputs the next call takes back (K/V caches): left where the runtime's `outputs` says. Others come to the host. */
  readonly kept?: readonly string[];
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

  /** Whether outputs kept for the next call stay in device buffers (see `OutputLocation`). */
  get keepsOnDevice(): boolean {
    return this.spec.outputs === 'gpu-buffer';
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
      // WebGPU leaves shape computations to the CPU by design, and onnxruntime warns of that on every session.
      ...(this.spec.provider === 'webgpu' ? { logSeverityLevel: 3 as const } : {}),
      // Without the arena (a session not `repeated`), memory a run used goes back when it ends instead of staying with each session.
      enableCpuMemArena: o.repeated === true,
      // Idle intra-op threads sleep instead of spinning: a staged model's sessions, a parent beside its child, or
      // llama.cpp timed in the same rounds run one after another, and each session's spinning threads took the
      // cores from the next (a SmolLM2-135M-shaped decode step: 280-420 ms spinning, 76-83 ms not, on 2 cores).
      extra: { session: { intra_op: { allow_spinning: '0' } } },
      ...(this.keepsOnDevice && o.kept !== undefined && o.kept.length > 0 ? { preferredOutputLocation: Object.fromEntries(o.kept.map((n) => [n, 'gpu-buffer' as const])) } : {}),
    };
  }

  /** Starts the provider with a one-node graph, so that a machine without the device is told before any work. */
  async check(): Promise<void> {
    if (this.spec.provider === 'cpu') return;
    const g = new GraphBuilder('tessera_check');
    g.output(g.node('Neg', [g.input('x', DataType.FLOAT, [1])], {}, 'y'), DataType.FLOAT, [1]);
    await (await this.session(g)).release();
  }

  /** A session of the model at `model` (a file or its bytes), with onnxruntime's refusal to start the provider said plainly. */
  private async create(model: string | Uint8Array, o: SessionUse): Promise<ort.InferenceSession> {
    try {
      return await (typeof model === 'string' ? ort.InferenceSession.create(model, this.sessionOptions(o)) : ort.InferenceSession.create(model, this.sessionOptions(o)));
    } catch (e) {
      if (this.spec.provider === 'webgpu' && /WebGPU adapter/.test(String(e))) fail(noAdapter(String(e)));
      throw e;
    }
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
      return await this.create(path, o);
    } finally {
      // onnxruntime has read (or mapped) the files by now; an unlinked mapping stays valid on Linux.
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** A session for a graph: handed over in memory, or through a temporary file with external data when its weights are large. */
  async session(graph: GraphBuilder, o: SessionUse = {}): Promise<ort.InferenceSession> {
    if (graph.initializerBytes < IN_MEMORY_LIMIT_BYTES) return this.create(graph.toBytes(), o);
    return this.sessionBuiltAt(() => graph, o);
  }
}

/** The CPU runtime with `threads` intra-op threads. */
export const cpuRuntime = (threads: number, stageBytes = DEFAULT_STAGE_BYTES) => new Runtime({ provider: 'cpu', threads, outputs: 'cpu', stageBytes });

/** The WebGPU runtime: K/V caches stay on the GPU between calls; `threads` run the nodes it leaves to the CPU. */
export const webgpuRuntime = (threads: number, stageBytes = DEFAULT_STAGE_BYTES) => new Runtime({ provider: 'webgpu', threads, outputs: 'gpu-buffer', stageBytes });

/** The runtime of a provider. */
export const runtimeFor = (provider: ExecutionProvider, threads: number, stageBytes = DEFAULT_STAGE_BYTES): Runtime =>
  (provider === 'webgpu' ? webgpuRuntime : cpuRuntime)(threads, stageBytes);

/** onnxruntime's refusal to start WebGPU, as one line that says what it needs. */
export const noAdapter = (error: string) =>
  `provider webgpu: onnxruntime found no GPU adapter (${error.split('\n')[0].replace(/^.*Failed to get a WebGPU adapter: /, '')}); ` +
  'its WebGPU provider reaches the GPU through Vulkan: install the Vulkan loader (libvulkan1) and the GPU\'s Vulkan driver, or use --provider cpu';

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
