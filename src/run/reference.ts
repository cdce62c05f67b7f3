import { existsSync, readFileSync } from 'node:fs';
import { sha256 } from '../util/hash.js';
import type { ReferenceDistribution } from '../lm/divergence.js';
import { nextTokens } from '../lm/divergence.js';
import { isObject } from '../model/json.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
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
}

const bytesOf = (a: Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * The parent's next-token distribution on the validation windows, stored beside the library: computed
 * once per library (it costs a full forward pass with the vocabulary's logits), read back by every later
 * solve, report and process. Null when absent or computed from other tokens or weights.
 */
export function loadReference(paths: RunPaths, ids: Int32Array, seqLen: number, vocab: number, parentFingerprint: string): ReferenceDistribution | null {
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
  const bytes = readFileSync(paths.referenceData);
  if (sha256(bytes) !== r.logprobsSha256) return null;
  const logprobs = new Float32Array(new Uint8Array(bytes).buffer);
  return { windows: r.windows, seqLen, vocab, logprobs, targets: nextTokens(ids, seqLen) };
}

export function storeReference(paths: RunPaths, ref: ReferenceDistribution, ids: Int32Array, parentFingerprint: string): void {
  const data = bytesOf(ref.logprobs);
  writeFileAtomic(paths.referenceData, data);
  const record: ReferenceRecord = {
    format: 'tessera-reference',
    version: 1,
    windows: ref.windows,
    seqLen: ref.seqLen,
    vocab: ref.vocab,
    idsSha256: sha256(bytesOf(ids)),
    parentFingerprint,
    logprobsSha256: sha256(data),
  };
  writeJsonAtomic(paths.referenceRecord, record);
}
