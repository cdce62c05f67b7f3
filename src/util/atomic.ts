import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Writes a file under a temporary name and renames it into place, so a killed process never
 * leaves a half-written file that a later run would trust. Chunks may be produced one at a time
 * (a generator), so a file larger than memory is written without holding it.
 */
export function writeFileAtomic(path: string, chunks: string | Uint8Array | Iterable<Uint8Array>): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  const parts: Iterable<Uint8Array> = typeof chunks === 'string' ? [Buffer.from(chunks)] : chunks instanceof Uint8Array ? [chunks] : chunks;
  const fd = openSync(tmp, 'w');
  try {
    for (const part of parts) {
      let offset = 0;
      while (offset < part.byteLength) offset += writeSync(fd, part, offset, part.byteLength - offset);
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}
