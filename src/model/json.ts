import { existsSync, readFileSync } from 'node:fs';
import { fail } from '../util/errors.js';

/** Reads a JSON file, failing with a one-line error that names the file. */
export function readJsonFile(path: string, what = 'file'): unknown {
  if (!existsSync(path)) fail(`${path}: ${what} not found`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail(`${path}: cannot read ${what} (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Typed field readers that name the file and field in every error. */
export class FieldReader {
  constructor(
    readonly file: string,
    readonly obj: JsonObject,
    readonly prefix = '',
  ) {}

  private where(key: string): string {
    return `${this.file}: field "${this.prefix}${key}"`;
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  positiveInt(key: string, fallback?: number): number {
    const v = this.obj[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      fail(`${this.where(key)} is missing; expected a positive integer`);
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      fail(`${this.where(key)} is ${JSON.stringify(v)}; expected a positive integer`);
    }
    return v;
  }

  positiveNumber(key: string, fallback?: number): number {
    const v = this.obj[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      fail(`${this.where(key)} is missing; expected a positive number`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      fail(`${this.where(key)} is ${JSON.stringify(v)}; expected a positive number`);
    }
    return v;
  }

  /** A boolean; absent or null (HF configs write null for unset fields) is `fallback`. */
  boolean(key: string, fallback: boolean): boolean {
    return this.obj[key] === null ? fallback : this.flag(key, fallback);
  }

  /** A boolean of Tessera's own files: absent is `fallback`, null is refused (it means nothing there). */
  flag(key: string, fallback: boolean): boolean {
    const v = this.obj[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') fail(`${this.where(key)} is ${JSON.stringify(v)}; expected true or false`);
    return v;
  }

  object(key: string): FieldReader | null {
    const v = this.obj[key];
    if (v === undefined || v === null) return null;
    if (!isObject(v)) fail(`${this.where(key)} is ${JSON.stringify(v)}; expected an object`);
    return new FieldReader(this.file, v, `${this.prefix}${key}.`);
  }

  string(key: string): string | null {
    const v = this.obj[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') fail(`${this.where(key)} is ${JSON.stringify(v)}; expected a string`);
    return v;
  }

  /** An integer or a list of integers (as HF writes eos_token_id). */
  intList(key: string): number[] {
    const v = this.obj[key];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) {
      fail(`${this.where(key)} is ${JSON.stringify(v)}; expected a token id or a list of token ids`);
    }
    return list as number[];
  }

  /** A non-empty list of positive numbers (`what` names them in the error). */
  positiveNumbers(key: string, what: string): number[] {
    const v = this.obj[key];
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
      fail(`${this.where(key)} is ${JSON.stringify(v)}; expected a non-empty list of ${what}`);
    }
    return v as number[];
  }

  /** Refuses any key not in `allowed`, naming the first unknown one. */
  onlyKeys(allowed: readonly string[]): void {
    for (const key of Object.keys(this.obj)) {
      if (!allowed.includes(key)) fail(`${this.file}: unknown field "${this.prefix}${key}"; expected one of ${allowed.join(', ')}`);
    }
  }

  problem(key: string, expected: string): never {
    fail(`${this.where(key)} is ${JSON.stringify(this.obj[key])}; expected ${expected}`);
  }
}
