import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { sha256 } from '../util/hash.js';
import type { ReferenceDistribution } from '../lm/divergence.js';
import { nextTokens } from '../lm/divergence.js';
import { isObject } from '../model/json.js';
import { atomicFile, writeJsonAtomic } from '../util/atomic.js';
import type { RunPaths } from './paths.js';

/** What `reference.f32` holds, and what it was computed from: checked by hash before it is trusted. */
interface ReferenceRecord {
  readonly format: 'tessera-reference';
  readonly version: 1;
  readonly windows: number;
  readonly seqLen: number;
  readonly vocab: number;
  /** The validation token ids and the parent's weights the log-probabilities were computed from. */
  readonly idsSha256: string;
  readonly parentFingerprint: string;
  /** The bytes of reference.f32: [windows·seqLen, vocab] float32 log-probabilities. */
  readonly logprobsSha256: string;
  /** The parent's mean NLL on the windows (recorded by the block library's validation pass). */
  readonly parentNll?: number;
}

const bytesOf = (a: Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * The parent's next-token distribution on the validation windows, stored beside the library: computed
 * once per library (it costs a full forward pass with the vocabulary's logits), read back by every later
 * solve, report and process. Null when absent or computed from other tokens or weights.
 */
export function loadReference(paths: RunPaths, ids: Int32Array, seqLen: number, vocab: number, parentFingerprint: string): ReferenceDistribution | null {
  const r = validRecord(paths, ids, seqLen, vocab, parentFingerprint);
  if (r === null) return null;
  const bytes = readFileSync(paths.referenceData);
  if (sha256(bytes) !== r.logprobsSha256) return null;
  const logprobs = new Float32Array(new Uint8Array(bytes).buffer);
  return { windows: r.windows, seqLen, vocab, logprobs, targets: nextTokens(ids, seqLen) };
}

/**
 * Whether the stored reference is the parent's on these windows (its file checked against its hash a chunk at a
 * time, never read whole), and the parent's NLL its record holds: what a resumed block library needs of it.
 */
export function storedReferenceNll(paths: RunPaths, ids: Int32Array, seqLen: number, vocab: number, parentFingerprint: string): number | null {
  const r = validRecord(paths, ids, seqLen, vocab, parentFingerprint);
  if (r === null || typeof r.parentNll !== 'number') return null;
  const hash = createHash('sha256');
  const fd = openSync(paths.referenceData, 'r');
  try {
    const chunk = new Uint8Array(2 ** 24);
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0; ) hash.update(chunk.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex') === r.logprobsSha256 ? r.parentNll : null;
}

/** The reference's record when it describes these windows, vocabulary and parent (its data not yet checked). */
function validRecord(paths: RunPaths, ids: Int32Array, seqLen: number, vocab: number, parentFingerprint: string): ReferenceRecord | null {
  if (!existsSync(paths.referenceRecord) || !existsSync(paths.referenceData)) return null;
  let record: unknown;
  try {
    record = JSON.parse(readFileSync(paths.referenceRecord, 'utf8'));
  } catch {
    return null;
  }
  const r = record as ReferenceRecord;
  const expected = { windows: ids.length / seqLen, seqLen, vocab, idsSha256: sha256(bytesOf(ids)), parentFingerprint };
  if (!isObject(record) || r.format !== 'tessera-reference' || Object.entries(expected).some(([k, v]) => r[k as keyof ReferenceRecord] !== v)) return null;
  return r;
}

/** Writes reference.f32 rows in order, a batch at a time, then its record; nothing is trusted until `finish`. */
export interface ReferenceWriter {
  /** The next rows of [windows·seqLen, vocab] log-probabilities. */
  write(rows: Float32Array): void;
  /** Makes the file and its record (with the parent's NLL when known) the library's, both atomically: a killed pass leaves no reference. */
  finish(parentNll?: number): void;
  /** Drops what was written. */
  abort(): void;
}

/**
 * The parent's validation distribution streamed to disk as it is computed — a [tokens, vocabulary] array is
 * gigabytes for a real vocabulary, and no process needs it whole — hashed on the way for its record.
 */
export function referenceWriter(paths: RunPaths, shape: { readonly windows: number; readonly seqLen: number; readonly vocab: number }, ids: Int32Array, parentFingerprint: string): ReferenceWriter {
  const file = atomicFile(paths.referenceData);
  const hash = createHash('sha256');
  let rows = 0;
  return {
    write(data) {
      file.write(bytesOf(data));
      hash.update(bytesOf(data));
      rows += data.length / shape.vocab;
    },
    finish(parentNll) {
      if (rows !== shape.windows * shape.seqLen) throw new Error(`${paths.referenceData}: ${rows} rows written of ${shape.windows * shape.seqLen}`);
      file.commit();
      const { windows, seqLen, vocab } = shape;
      const record: ReferenceRecord = { format: 'tessera-reference', version: 1, windows, seqLen, vocab, idsSha256: sha256(bytesOf(ids)), parentFingerprint, logprobsSha256: hash.digest('hex'), ...(parentNll !== undefined ? { parentNll } : {}) };
      writeJsonAtomic(paths.referenceRecord, record);
    },
    abort: () => file.abort(),
  };
}

/** Stores a reference held in memory (one computed by `distributionOn`). */
export function storeReference(paths: RunPaths, ref: ReferenceDistribution, ids: Int32Array, parentFingerprint: string): void {
  const writer = referenceWriter(paths, ref, ids, parentFingerprint);
  try {
    writer.write(ref.logprobs);
    writer.finish();
  } catch (e) {
    writer.abort();
    throw e;
  }
}
