import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { literal, removeLeftovers } from './leftovers.js';

/**
 * A file written under a temporary name beside its path and renamed into place by `commit`, so a killed process
 * never leaves a half-written file that a later run would trust. Bytes are appended, or written at a position
 * (a file of known `size`, filled out of order); `scratch` files (only ever opened by this process) skip the fsync.
 */
export interface AtomicFile {
  write(bytes: Uint8Array, position?: number): void;
  /** Bytes appended so far (the end of the file for appends). */
  readonly length: number;
  commit(): void;
  /** Removes what was written; the path is untouched. */
  abort(): void;
}

export function atomicFile(path: string, o: { size?: number; scratch?: boolean } = {}): AtomicFile {
  mkdirSync(dirname(path), { recursive: true });
  removeLeftovers(dirname(path), new RegExp(`^${literal(basename(path))}\\.(\\d+)\\.tmp$`));
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  if (o.size !== undefined) ftruncateSync(fd, o.size);
  let open = true;
  let length = 0;
  const close = () => {
    if (open) closeSync(fd);
    open = false;
  };
  return {
    write(bytes, position) {
      if (!open) throw new Error(`${path}: already committed or aborted`);
      for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done, position === undefined ? null : position + done);
      if (position === undefined) length += bytes.byteLength;
    },
    get length() {
      return length;
    },
    commit() {
      try {
        if (!o.scratch) fsyncSync(fd);
      } finally {
        close();
      }
      renameSync(tmp, path);
    },
    abort() {
      close();
      rmSync(tmp, { force: true });
    },
  };
}

/**
 * Writes a whole file atomically (see `atomicFile`). Chunks may be produced one at a time (a generator), so a
 * file larger than memory is written without holding it.
 */
export function writeFileAtomic(path: string, chunks: string | Uint8Array | Iterable<Uint8Array>): void {
  const parts: Iterable<Uint8Array> = typeof chunks === 'string' ? [Buffer.from(chunks)] : chunks instanceof Uint8Array ? [chunks] : chunks;
  const file = atomicFile(path);
  try {
    for (const part of parts) file.write(part);
  } catch (e) {
    file.abort();
    throw e;
  }
  file.commit();
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}
