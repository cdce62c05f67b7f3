import { existsSync, readFileSync } from 'node:fs';
import type { TextRange } from '../data/sequences.js';
import { isObject } from '../model/json.js';
import { childFiles } from '../run/paths.js';
import { writeJsonAtomic } from '../util/atomic.js';

/** tessera.json in an exported child: where it came from, and the text its search saw (so evaluation skips it). */
export interface ChildProvenance {
  readonly format: 'tessera-child';
  readonly version: 1;
  readonly parent: string;
  readonly run: string;
  /** The solution it was exported from, and the hash of that spec.json (a child of another spec is stale). */
  readonly solution: string;
  readonly specSha256: string;
  /** The hardware profile it was searched for. */
  readonly hardware: string;
  /** The text the child has seen: the library's calibration and validation windows (and, distilled, its training text as calibration). */
  readonly data: { readonly seqLen: number; readonly calibration: TextRange; readonly validation: TextRange };
  /** For a distilled child: how it was trained, and how it compared with its parent before and after. */
  readonly distillation?: DistillationRecord;
}

/** A distillation as the child records it. */
export interface DistillationRecord {
  readonly from: string;
  /** Every weight trained, or low-rank adapters (merged into the weights written); absent in records before adapters: 'full'. */
  readonly method?: 'full' | 'lora';
  readonly adapters?: { readonly rank: number; readonly alpha: number };
  readonly loss: Readonly<Record<string, number>>;
  readonly tokens: number;
  readonly steps: number;
  readonly batch: number;
  readonly seqLen: number;
  readonly lr: number;
  readonly warmup: number;
  readonly seed: number;
  readonly train: TextRange;
  readonly evaluation: TextRange;
  readonly before: { readonly kl: number; readonly perplexity: number };
  readonly after: { readonly kl: number; readonly perplexity: number };
  readonly parentPerplexity: number;
  /** Of the gap in log-perplexity between child and parent, the part distillation closed. */
  readonly nllGapClosed: number;
}

export function writeProvenance(childDir: string, p: ChildProvenance): void {
  writeJsonAtomic(childFiles.provenance(childDir), p);
}

/** A child's provenance, or null for a model directory Tessera did not export (or an older one). */
export function readProvenance(childDir: string): ChildProvenance | null {
  const path = childFiles.provenance(childDir);
  if (!existsSync(path)) return null;
  try {
    const p: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return isObject(p) && p.format === 'tessera-child' && p.version === 1 ? (p as unknown as ChildProvenance) : null;
  } catch {
    return null;
  }
}
