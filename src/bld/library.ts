import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type { TextRange } from '../data/sequences.js';
import { join } from 'node:path';
import { isObject } from '../model/json.js';
import { SafetensorsFile, writeSafetensorsStreaming } from '../model/safetensors.js';
import { encodedTensor, type StoredDtype } from '../model/save.js';
import type { RunPaths } from '../run/paths.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { fail } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import type { Tensor } from '../util/tensor.js';
import type { ModelConfig } from '../arch/config.js';
import { subBlockWeights, tensorKey, type SubBlockWeights } from '../model/weights.js';
import type { CandidateScore, CandidateSpec } from './candidate.js';
import type { ChannelRanking } from './derive.js';
import { CONTENT_FINGERPRINT } from '../model/tensor-source.js';

export const LIBRARY_FORMAT = 'tessera-block-library';

/** What a block library was built from; a library is only resumed for the same inputs. */
export interface LibraryManifest {
  readonly format: typeof LIBRARY_FORMAT;
  readonly version: 1;
  readonly parent: { readonly dir: string; readonly configSha256: string; readonly weightsFingerprint: string; readonly sourceArchitecture: string };
  readonly space: { readonly file: string; readonly name: string; readonly sha256: string };
  readonly data: { readonly seqLen: number; readonly calibration: TextRange; readonly validation: TextRange };
  /** `weightsDtype`: how candidates' weights are stored (absent: float32). */
  readonly options: { readonly ranking: ChannelRanking; readonly ridgeGrid: readonly number[]; readonly seed: number; readonly bldTokens?: number; readonly weightsDtype?: StoredDtype };
  readonly versions: Readonly<Record<string, string>>;
  readonly created: string;
}

/** A candidate's record on disk: its score, and the hash of its weights file; written last, so it marks completion. */
export interface CandidateRecord {
  readonly score: CandidateScore;
  readonly weightsSha256: string;
}

/** The fields that decide whether an existing library is this run's: everything but paths, dates and versions. */
export function libraryIdentity(m: LibraryManifest) {
  return { parent: { configSha256: m.parent.configSha256, weightsFingerprint: m.parent.weightsFingerprint }, space: m.space.sha256, data: m.data, options: m.options };
}

/**
 * A run's block library: manifest.json, and per candidate its fitted weights (`<layer>.<variant>.safetensors`)
 * and its record (`<layer>.<variant>.json`: scores). Every file is written atomically, weights before their
 * record, so a killed run resumes with nothing half-done and nothing finished redone.
 */
export class BlockLibrary {
  private constructor(
    readonly paths: RunPaths,
    readonly manifest: LibraryManifest,
    private readonly done: Map<string, CandidateRecord>,
  ) {}

  get dir(): string {
    return this.paths.library;
  }

  /** Opens the run's library, creating it for `manifest` if absent; refuses a foreign directory or a library of other inputs. */
  static open(paths: RunPaths, manifest: LibraryManifest): BlockLibrary {
    if (existsSync(paths.dir) && readdirSync(paths.dir).length > 0 && !existsSync(paths.manifest)) {
      fail(`${paths.dir}: exists and is not a Tessera run directory (no library/manifest.json); choose another --out or empty it`);
    }
    if (!existsSync(paths.manifest)) {
      writeJsonAtomic(paths.manifest, manifest); // first, so a kill right after leaves a library, not a stranger
      mkdirSync(paths.candidates, { recursive: true });
      return new BlockLibrary(paths, manifest, new Map());
    }
    const existing = readLibraryManifest(paths);
    const [a, b] = [libraryIdentity(existing), libraryIdentity(manifest)];
    const field = (['parent', 'space', 'data', 'options'] as const).find((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
    if (field === 'parent' && !existing.parent.weightsFingerprint.startsWith(CONTENT_FINGERPRINT)) fail(olderFingerprint(paths.manifest));
    if (field !== undefined) {
      fail(`${paths.manifest}: this library was built for another ${field} (${JSON.stringify(a[field])} vs ${JSON.stringify(b[field])}); use another --out to build a new one`);
    }
    return BlockLibrary.read(paths, existing);
  }

  /** The library as it is on disk. */
  static read(paths: RunPaths, manifest = readLibraryManifest(paths)): BlockLibrary {
    mkdirSync(paths.candidates, { recursive: true });
    return new BlockLibrary(paths, manifest, readRecords(paths));
  }

  has(key: string): boolean {
    return this.done.has(key);
  }

  /** A finished candidate's record: its scores and the hash of its weights. */
  record(key: string): CandidateRecord | undefined {
    return this.done.get(key);
  }

  /** Whether a candidate is in the library with local scores only (a first pass): its global scores are still to come. */
  isLocalOnly(key: string): boolean {
    return this.done.get(key)?.score.kl === null;
  }

  get completed(): number {
    return this.done.size;
  }

  /** Records a finished candidate whose weights `writeCandidateWeights` wrote: the record vouches for them, so it comes last. */
  write(score: CandidateScore, weightsSha256: string): void {
    if (!existsSync(this.paths.candidateWeights(score.key))) throw new Error(`candidate ${score.key}: its weights were not written before its record`);
    const record: CandidateRecord = { score, weightsSha256 };
    writeJsonAtomic(this.paths.candidateRecord(score.key), record);
    this.done.set(score.key, record);
  }

  scores(): CandidateScore[] {
    return [...this.done.values()].map((r) => r.score).sort((a, b) => a.layer - b.layer || a.subBlock.localeCompare(b.subBlock) || a.key.localeCompare(b.key));
  }

  /**
   * Reads a candidate's fitted weights back (by tensor key, e.g. "attention.o"), checked against the hash its
   * record vouches for (checked when read, not when the library opens: a real model's library is gigabytes).
   */
  weights(key: string): Record<string, Tensor> {
    const path = this.paths.candidateWeights(key);
    const record = this.done.get(key);
    if (record === undefined) fail(`${this.paths.candidateRecord(key)}: no such finished candidate in the library`);
    if (!existsSync(path) || sha256(readFileSync(path)) !== record.weightsSha256) {
      fail(`${path}: missing or does not match its record ${this.paths.candidateRecord(key)}; delete both to recompute that candidate`);
    }
    const f = SafetensorsFile.open(path);
    try {
      return Object.fromEntries([...f.entries.keys()].map((name) => [name, f.read(name)]));
    } finally {
      f.close();
    }
  }

  /** scores.json: every candidate's scores, and the parent's validation LM loss they are relative to. */
  writeSummary(): void {
    const scores = this.scores();
    const global = scores.find((s) => s.lmLoss !== null && s.lmLossDelta !== null);
    const parentNll = global === undefined ? null : global.lmLoss! - global.lmLossDelta!;
    const summary = { manifest: this.manifest, parent: { validationNll: parentNll }, candidates: scores };
    writeFileAtomic(this.paths.scores, JSON.stringify(summary, null, 2) + '\n');
  }
}

/**
 * Writes a candidate's fitted weights (atomically) where its record will point, and returns their hash. Scoring
 * workers call it as soon as a candidate's weights are final; the record follows once its scores are.
 */
export function writeCandidateWeights(path: string, at: { readonly layer: number; readonly subBlock: string }, tensors: Record<string, Tensor>, dtype: StoredDtype): string {
  const lazy = new Map(Object.entries(tensors).map(([key, t]) => [key, encodedTensor(`${path}: ${key}`, t.shape, () => t, dtype)]));
  writeSafetensorsStreaming(path, lazy, { layer: String(at.layer), subBlock: at.subBlock });
  return sha256(readFileSync(path));
}

/** A candidate's fitted sub-block read back from its weights file (one a first, local-only pass wrote). */
export function readCandidateWeights(config: ModelConfig, c: CandidateSpec, path: string): SubBlockWeights {
  const f = SafetensorsFile.open(path);
  try {
    return subBlockWeights(config, c.subBlock, c.variant, (role) => f.read(tensorKey(c.subBlock, role)));
  } finally {
    f.close();
  }
}

/** A run's library manifest; a directory that holds none is named for what it is. */
export function readLibraryManifest(paths: RunPaths): LibraryManifest {
  const path = paths.manifest;
  if (!existsSync(paths.dir)) fail(`${paths.dir}: no such run directory; build one with \`tessera score --out ${paths.dir}\``);
  if (!statSync(paths.dir).isDirectory()) fail(`${paths.dir}: is a file, not a run directory; a run directory is what \`tessera score --out\` builds`);
  if (!existsSync(path) && existsSync(join(paths.dir, 'manifest.json'))) {
    fail(`${paths.dir}: a block library in an older Tessera's layout (manifest.json at the top); build it again with \`tessera score --out\` into a new directory`);
  }
  if (!existsSync(path)) {
    const what = existsSync(join(paths.dir, 'config.json')) ? 'a model directory, not a run directory' : 'not a run directory';
    fail(`${paths.dir}: ${what} (no library/manifest.json); a run directory is what \`tessera score --out\` or \`tessera search --out\` builds`);
  }
  let m: unknown;
  try {
    m = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    fail(`${path}: corrupted block-library manifest (${(e as Error).message}); delete the run directory to rebuild`);
  }
  if (!isObject(m) || m.format !== LIBRARY_FORMAT) fail(`${path}: field "format" is ${JSON.stringify(isObject(m) ? m.format : m)}; expected "${LIBRARY_FORMAT}"`);
  return m as unknown as LibraryManifest;
}

function readRecords(paths: RunPaths): Map<string, CandidateRecord> {
  const done = new Map<string, CandidateRecord>();
  for (const name of readdirSync(paths.candidates).sort()) {
    if (!name.endsWith('.json')) continue;
    const key = name.slice(0, -'.json'.length);
    const path = paths.candidateRecord(key);
    let record: CandidateRecord;
    try {
      record = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      fail(`${path}: corrupted candidate record (not JSON); delete it to recompute that candidate`);
    }
    if (record?.score?.key !== key || typeof record.weightsSha256 !== 'string') fail(`${path}: corrupted candidate record (fields "score.key" / "weightsSha256"); delete it to recompute that candidate`);
    const weights = paths.candidateWeights(key);
    if (!existsSync(weights)) fail(`${weights}: missing, but its record ${path} says it is finished; delete the record to recompute that candidate`);
    done.set(key, record);
  }
  return done;
}

/** Why a library of an earlier Tessera cannot be trusted for its parent. */
export const olderFingerprint = (where: string) =>
  `${where}: built by an earlier Tessera, which identified the parent by its weight files' first and last MiB only (a change in between went unseen); use another --out, or delete this library, to rebuild it`;
