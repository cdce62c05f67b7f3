import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { fail } from '../util/errors.js';
import { numel, type Tensor } from '../util/tensor.js';
import { writeFileAtomic } from '../util/atomic.js';
import { contentHash } from './content-hash.js';
import { bf16ToF32, f16ToF32 } from './dtype.js';

/** Bytes per element of every dtype the safetensors format defines (so any valid header parses). */
const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1,
};
export const READABLE_DTYPES = ['F32', 'F16', 'BF16'] as const;

export interface SafetensorsEntry {
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte range in the file. */
  readonly begin: number;
  readonly end: number;
}

// A header larger than this is not a real checkpoint (transformers uses the same 100 MB bound).
const MAX_HEADER_BYTES = 100_000_000;

/**
 * One `.safetensors` file, read lazily: the header is parsed and checked on open, tensors are read
 * with positioned reads on demand, so multi-gigabyte shards never have to fit in one buffer.
 */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly entries: ReadonlyMap<string, SafetensorsEntry>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      fail(`${path}: safetensors file not found or not readable`);
    }
    try {
      const { entries, metadata } = parseHeader(path, fd);
      return new SafetensorsFile(path, fd, entries, metadata);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Reads a tensor as float32, converting F16/BF16; other dtypes are a user error naming the tensor. */
  read(name: string): Tensor {
    const e = this.readable(name);
    return { data: decode(e.dtype, this.readBytes(name, e.begin, e.end - e.begin)), shape: e.shape };
  }

  /**
   * Rows of a 2-D tensor as float32, [rows.length, columns] (an embedding's rows for some token ids), each read
   * on its own: a table that is only looked up never has to be in memory.
   */
  readRows(name: string, rows: ArrayLike<number>): Float32Array {
    const e = this.readable(name);
    if (e.shape.length !== 2) throw new Error(`${this.path}: "${name}" is not a 2-D tensor`);
    const [count, columns] = e.shape;
    const rowBytes = (e.end - e.begin) / count;
    const out = new Float32Array(rows.length * columns);
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r];
      if (!(Number.isInteger(row) && row >= 0 && row < count)) throw new RangeError(`row ${row} of "${name}" (${count} rows)`);
      out.set(decode(e.dtype, this.readBytes(name, e.begin + row * rowBytes, rowBytes)), r * columns);
    }
    return out;
  }

  /** A tensor's entry, or a user error when it is missing or of a dtype Tessera does not read. */
  private readable(name: string): SafetensorsEntry {
    const e = this.entries.get(name);
    if (e === undefined) fail(`${this.path}: tensor "${name}" is missing`);
    if (!(READABLE_DTYPES as readonly string[]).includes(e.dtype)) {
      fail(`${this.path}: tensor "${name}" has dtype ${e.dtype}; expected one of ${READABLE_DTYPES.join(', ')}`);
    }
    return e;
  }

  private readBytes(name: string, begin: number, length: number): Buffer {
    const bytes = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const n = readSync(this.fd, bytes, got, length - got, begin + got);
      if (n === 0) fail(`${this.path}: file ends inside tensor "${name}" (truncated)`);
      got += n;
    }
    return bytes;
  }

  /**
   * What identifies the file's contents: its name, size and a hash of every byte (see `contentHash`: computed
   * once per file version and cached), read through the already-open handle.
   */
  fingerprint(): string {
    const hash = contentHash(this.path, this.fd, (path, bytes) => {
      if (bytes >= 1 << 30) process.stderr.write(`hashing ${path} (${(bytes / 2 ** 30).toFixed(1)} GiB), once: later runs reuse the hash while the file is unchanged\n`);
    });
    return `${basename(this.path)}:${fstatSync(this.fd).size}:${hash}`;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** A tensor's stored bytes (F32, F16 or BF16) as float32. */
export function decode(dtype: string, bytes: Uint8Array): Float32Array {
  // Copy into a fresh aligned buffer: Buffer pools may hand out unaligned offsets.
  const aligned = new Uint8Array(bytes).buffer;
  if (dtype === 'F32') return new Float32Array(aligned);
  const halves = new Uint16Array(aligned);
  return dtype === 'BF16' ? bf16ToF32(halves) : f16ToF32(halves);
}

function parseHeader(path: string, fd: number) {
  const size = fstatSync(fd).size;
  const corrupt: (why: string) => never = (why) => fail(`${path}: truncated or corrupt safetensors header (${why})`);
  if (size < 8) corrupt(`file is ${size} bytes, shorter than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  readSync(fd, lenBuf, 0, 8, 0);
  const stated = lenBuf.readBigUInt64LE(0);
  // Printed from the 64-bit integer itself: as a double, 2^62 would read 4611686018427388000.
  if (stated > BigInt(MAX_HEADER_BYTES)) corrupt(`header length ${stated} is implausible`);
  const headerLen = Number(stated);
  if (8 + headerLen > size) corrupt(`header claims ${headerLen} bytes but the file has ${size - 8} after the length`);
  const headerBuf = Buffer.alloc(headerLen);
  readSync(fd, headerBuf, 0, headerLen, 8);
  let header: unknown;
  try {
    header = JSON.parse(headerBuf.toString('utf8'));
  } catch {
    corrupt('header is not valid JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) corrupt('header is not a JSON object');

  const dataStart = 8 + headerLen;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = (value ?? {}) as Record<string, string>;
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const elementBytes = typeof v?.dtype === 'string' ? DTYPE_BYTES[v.dtype] : undefined;
    if (elementBytes === undefined) corrupt(`tensor "${name}" has unknown dtype ${JSON.stringify(v?.dtype)}`);
    const shape = v.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      corrupt(`tensor "${name}" has an invalid shape`);
    }
    const offsets = v.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
      corrupt(`tensor "${name}" has invalid data_offsets`);
    }
    const [b, e] = offsets as [number, number];
    if (e < b || e - b !== numel(shape) * elementBytes) {
      corrupt(`tensor "${name}" spans ${e - b} bytes, its shape and dtype need ${numel(shape) * elementBytes}`);
    }
    if (dataStart + e > size) {
      fail(`${path}: file is truncated: tensor "${name}" ends at byte ${dataStart + e} but the file has ${size}`);
    }
    entries.set(name, { dtype: v.dtype as string, shape: shape as number[], begin: dataStart + b, end: dataStart + e });
  }
  return { entries, metadata };
}

/** A tensor to write: its dtype and shape, and its bytes, made only when the writer reaches it. */
export interface TensorToWrite {
  readonly dtype: 'F32' | 'BF16' | 'F16';
  readonly shape: readonly number[];
  bytes(): Uint8Array;
}

/** Writes float32 tensors as one safetensors file, atomically. */
export function writeSafetensors(path: string, tensors: ReadonlyMap<string, Tensor>, metadata: Record<string, string> = {}): void {
  const lazy = new Map<string, TensorToWrite>();
  for (const [name, t] of tensors) lazy.set(name, { dtype: 'F32', shape: t.shape, bytes: () => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) });
  writeSafetensorsStreaming(path, lazy, metadata);
}

/**
 * Writes one safetensors file atomically, asking each tensor for its bytes only when it is written: the
 * header is known from shapes alone, so a file of any size passes through memory one tensor at a time.
 */
export function writeSafetensorsStreaming(path: string, tensors: ReadonlyMap<string, TensorToWrite>, metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const bytes = numel(t.shape) * DTYPE_BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // Pad the header with spaces to a multiple of 8 so the data that follows stays aligned.
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  writeFileAtomic(path, (function* () {
    yield len;
    yield headerBytes;
    for (const [name, t] of tensors) {
      const bytes = t.bytes();
      if (bytes.byteLength !== numel(t.shape) * DTYPE_BYTES[t.dtype]) throw new Error(`tensor "${name}": ${bytes.byteLength} bytes for shape [${t.shape.join(', ')}] in ${t.dtype}`);
      yield bytes;
    }
  })());
}
