import { existsSync, readFileSync, statSync } from 'node:fs';
import { fail } from '../util/errors.js';

/** Share of control characters (other than tab, line and page breaks) above which a file is not text. */
const MOST_CONTROL_SHARE = 0.01;

/**
 * A UTF-8 text file's contents. Refused, naming the file: a directory, an empty file, bytes that are not UTF-8
 * (the offset of the first), and binary files that happen to decode (NUL bytes, or more than 1% control
 * characters) — a model's NLL on such bytes means nothing.
 */
export function readText(path: string): string {
  if (!existsSync(path)) fail(`${path}: text file not found`);
  if (statSync(path).isDirectory()) fail(`${path}: is a directory; expected a UTF-8 text file`);
  const bytes = readFileSync(path);
  const invalid = firstInvalidUtf8(bytes);
  if (invalid >= 0) fail(`${path}: not UTF-8 text (byte 0x${bytes[invalid].toString(16).padStart(2, '0')} at offset ${invalid}); convert it to UTF-8`);
  const text = bytes.toString('utf8');
  if (text.trim().length === 0) fail(`${path}: text file is empty`);
  const control = controlCharacters(bytes);
  if (control.count > 0 && (bytes.includes(0) || control.count > MOST_CONTROL_SHARE * text.length)) {
    fail(`${path}: not text: ${control.count} control bytes (the first at offset ${control.first}); expected a UTF-8 text file`);
  }
  return text;
}

/** The offset of the first byte that breaks UTF-8 (a stray continuation, a truncated or overlong sequence, a surrogate, beyond U+10FFFF); -1 when valid. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    // The sequence's length and the range its second byte must fall in (excluding overlongs, surrogates and > U+10FFFF).
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return i;
    if (i + 1 >= b.length || b[i + 1] < lo || b[i + 1] > hi) return i;
    for (let k = 2; k < n; k++) if (i + k >= b.length || (b[i + k] & 0xc0) !== 0x80) return i;
    i += n;
  }
  return -1;
}

/** C0 control bytes and DEL, other than tab, line feed, form feed and carriage return: how many, and the first's offset. */
function controlCharacters(b: Uint8Array): { count: number; first: number } {
  let count = 0;
  let first = -1;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0c && c !== 0x0d) || c === 0x7f) {
      if (count++ === 0) first = i;
    }
  }
  return { count, first };
}

/** Documents separated by blank lines, trimmed, empty ones dropped. */
export function paragraphs(text: string): string[] {
  return text
    .split(/\r?\n\s*\r?\n/)
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}
