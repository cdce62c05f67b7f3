import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Whether a process with this pid exists (signal 0 checks without sending; EPERM: it exists, as another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the entries of `dir` whose names match `pattern` (its first group: the pid of the process that made
 * them) when that process is gone: the partial files and folders of a killed run, which no run may trust and
 * none would otherwise remove. Entries of live processes, this one included, are left alone. Returns the
 * paths removed.
 */
export function removeLeftovers(dir: string, pattern: RegExp): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid <= 0 || processAlive(pid)) continue;
    const path = join(dir, name);
    rmSync(path, { recursive: true, force: true });
    removed.push(path);
  }
  return removed;
}

/** `text` as a literal inside a regular expression. */
export const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
