import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from './errors.js';
import { processAlive } from './leftovers.js';

/**
 * Takes the lock on `dir`'s work for this process (a `.lock` file holding its pid) and returns its release.
 * Another live holder is refused in one line naming its pid; a dead holder's lock (a killed run) is taken over.
 */
export function lockDirectory(dir: string, what: string): () => void {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, '.lock');
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        if (holderOf(path) === process.pid) rmSync(path, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = holderOf(path);
    if (holder === null && attempt < 2) {
      // Made an instant ago: its maker may not have written its pid yet.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
      continue;
    }
    if (holder !== null && processAlive(holder)) {
      fail(`${dir}: ${what} is being written by another tessera process (pid ${holder}); wait for it to finish, or stop it and run again`);
    }
    rmSync(path, { force: true });
  }
  fail(`${dir}: could not take the lock on ${what} (${path}); another process keeps taking it`);
}

function holderOf(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}
