import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../arch/config.js';
import { SUB_BLOCKS, type SubBlock } from '../arch/variant.js';
import { windowBatches, type WindowSet } from '../data/sequences.js';
import { batchTokensFor, hasTarget, logSoftmaxRows, nextTokens, type ReferenceRows } from '../lm/divergence.js';
import type { WeightSource } from '../model/weights.js';
import { subBlockTaps, tapName, type TapSite } from '../onnx/emit.js';
import type { Runtime } from '../onnx/runtime.js';
import { runStaged } from '../onnx/staged.js';
import { atomicFile, writeJsonAtomic, type AtomicFile } from '../util/atomic.js';

/** A sub-block's input and output (what it adds to the residual stream) over every token of a window set, each [tokens, hidden]. */
export interface SubBlockActivations {
  readonly input: Float32Array;
  readonly output: Float32Array;
}

export type LayerActivations = { readonly [S in SubBlock]: SubBlockActivations };

/**
 * The parent's activations on a window set, on disk one file per layer (a model's activations over thousands
 * of tokens are gigabytes): plain data, so it crosses into worker threads, which read the layers they use.
 */
export interface ActivationFiles {
  readonly dir: string;
  readonly windows: number;
  readonly seqLen: number;
  readonly hidden: number;
  readonly layers: number;
  /** The windows' token ids (in a SharedArrayBuffer). */
  readonly ids: Int32Array;
}

/** Activations as candidates use them: a layer at a time (the last one read is kept). */
export interface ActivationSet {
  readonly windows: number;
  readonly seqLen: number;
  readonly hidden: number;
  readonly ids: Int32Array;
  layer(i: number): LayerActivations;
}

/** Validation activations plus what global scores compare against: the parent's next-token log-probabilities. */
export interface ValidationSet extends ActivationSet {
  /** Rows of the log-softmax of the parent's logits, read from the run's stored reference as needed. */
  readonly reference: ReferenceRows;
  /** The parent's mean NLL over positions that have a next token. */
  readonly parentNll: number;
}

/** What the validation pass adds to its activation files (its log-probabilities went to their sink). */
export interface ValidationReference {
  readonly targets: Int32Array;
  readonly parentNll: number;
}

/** Which tap holds each sub-block's input and output. */
const SITES: { readonly [S in SubBlock]: { readonly input: TapSite; readonly output: TapSite } } = {
  attention: { input: 'residual', output: 'attention.output' },
  ffn: { input: 'ffn.input', output: 'ffn.output' },
};

const ENDS = ['input', 'output'] as const;
const layerFile = (dir: string, i: number) => join(dir, `${i}.f32`);
const COMPLETE = 'complete.json';

/**
 * Runs the parent over a window set in stages, writing every layer's sub-block inputs and outputs to `dir`
 * (one file per layer, as each stage finishes) and, given `logprobs`, handing it the parent's log-probabilities
 * a batch of rows at a time, in order (the pass then returns the parent's NLL). Files of a completed earlier
 * pass for the same windows are reused (activations alone: no logprobs asked).
 */
export async function computeActivations(config: ModelConfig, source: WeightSource, set: WindowSet, seqLen: number, dir: string, runtime: Runtime, logprobs: ((rows: Float32Array) => void) | null): Promise<{ files: ActivationFiles; reference: ValidationReference | null }> {
  const L = source.numLayers;
  const E = config.hiddenSize;
  const V = config.vocabSize;
  const tokens = set.count * seqLen;
  const ids = new Int32Array(new SharedArrayBuffer(tokens * 4));
  ids.set(set.ids);
  const files: ActivationFiles = { dir, windows: set.count, seqLen, hidden: E, layers: L, ids };
  const identity = { windows: set.count, seqLen, hidden: E, layers: L, ids: Array.from(set.ids.subarray(0, 64)) };
  const withLogprobs = logprobs !== null;
  if (!withLogprobs && isComplete(dir, identity)) return { files, reference: null };
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });

  const targets = nextTokens(ids, seqLen, new Int32Array(new SharedArrayBuffer(tokens * 4)));
  const nll = { sum: 0, counted: 0 };
  // With log-probabilities, batches small enough that their logits stay tens of megabytes.
  const batches = [...windowBatches(set.count, seqLen, withLogprobs ? batchTokensFor(V, seqLen) : 2048)];
  // Per layer, [attention in, attention out, ffn in, ffn out], each [tokens, hidden]: every batch's rows are
  // written in place as they arrive (a no-op's outputs stay zeros), the file renamed once the last has passed.
  const open = new Map<number, AtomicFile>();
  const taps = Array.from({ length: L }, (_, i) => i).flatMap(subBlockTaps);
  try {
    await runStaged(
      config,
      source,
      runtime,
      batches.map(({ batch, from, to }) => ({ ids: set.ids.subarray(from, to), batch, seq: seqLen })),
      { logits: withLogprobs ? 'all' : 'none', taps },
      (b, r) => {
        if (logprobs === null) return;
        const { from, to } = batches[b];
        const rows = new Float32Array((to - from) * V);
        logSoftmaxRows(r.logits!.data, V, rows, 0);
        for (let t = from; t < to; t++) {
          if (!hasTarget(t, seqLen)) continue;
          nll.sum -= rows[(t - from) * V + targets[t]];
          nll.counted++;
        }
        logprobs(rows);
      },
      (b, got) => {
        const offset = batches[b].from * E;
        const layersHere = new Set([...got.keys()].map((name) => Number(name.split('.').pop())));
        for (const i of layersHere) {
          if (i >= L) continue;
          let file = open.get(i);
          if (file === undefined) open.set(i, (file = atomicFile(layerFile(dir, i), { size: 4 * tokens * E * 4 })));
          SUB_BLOCKS.forEach((sub, s) => ENDS.forEach((end, e) => {
            const t = got.get(tapName({ layer: i, site: SITES[sub][end] }));
            if (t !== undefined) file.write(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), ((2 * s + e) * tokens * E + offset) * 4);
          }));
          if (b === batches.length - 1) {
            open.delete(i);
            file.commit();
          }
        }
      },
    );
  } finally {
    for (const file of open.values()) file.abort();
  }
  writeJsonAtomic(join(dir, COMPLETE), identity);
  return { files, reference: withLogprobs ? { targets, parentNll: nll.sum / nll.counted } : null };
}

function isComplete(dir: string, identity: unknown): boolean {
  const marker = join(dir, COMPLETE);
  if (!existsSync(marker)) return false;
  try {
    return JSON.stringify(JSON.parse(readFileSync(marker, 'utf8'))) === JSON.stringify(identity);
  } catch {
    return false;
  }
}

/** A set's activations read from its files, one layer at a time (the last layer read is kept). */
export function activationSet(files: ActivationFiles): ActivationSet {
  let current: { layer: number; activations: LayerActivations } | null = null;
  return {
    windows: files.windows,
    seqLen: files.seqLen,
    hidden: files.hidden,
    ids: files.ids,
    layer: (i) => {
      if (current?.layer !== i) current = { layer: i, activations: readLayer(files, i) };
      return current.activations;
    },
  };
}

function readLayer(files: ActivationFiles, i: number): LayerActivations {
  const n = files.windows * files.seqLen * files.hidden;
  const data = new Float32Array(4 * n);
  const bytes = new Uint8Array(data.buffer);
  const fd = openSync(layerFile(files.dir, i), 'r');
  try {
    for (let got = 0; got < bytes.length; ) {
      const r = readSync(fd, bytes, got, bytes.length - got, got);
      if (r === 0) throw new Error(`${layerFile(files.dir, i)}: shorter than ${bytes.length} bytes`);
      got += r;
    }
  } finally {
    closeSync(fd);
  }
  const part = (k: number) => data.subarray(k * n, (k + 1) * n);
  return { attention: { input: part(0), output: part(1) }, ffn: { input: part(2), output: part(3) } };
}
