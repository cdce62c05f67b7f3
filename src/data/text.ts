import { existsSync, readFileSync } from 'node:fs';
import { fail } from '../util/errors.js';

export function readText(path: string): string {
  if (!existsSync(path)) fail(`${path}: text file not found`);
  const text = readFileSync(path, 'utf8');
  if (text.trim().length === 0) fail(`${path}: text file is empty`);
  return text;
}

/** Documents separated by blank lines, trimmed, empty ones dropped. */
export function paragraphs(text: string): string[] {
  return text
    .split(/\r?\n\s*\r?\n/)
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}
