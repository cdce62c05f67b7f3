import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { fail } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';
import { SafetensorsFile, writeSafetensors } from '../model/safetensors.js';
import type { TextRange } from '../data/sequences.js';
import type { CandidateScore } from './candidate.js';

export const LIBRARY_FORMAT = 'tessera-block-library';

/** What a block library was built from; a library is only resumed for the same inputs. */
export interface LibraryManifest {
  readonly format: typeof LIBRARY_FORMAT;
  readonly version: 1;
  readonly parent: { readonly dir: string; readonly configSha256: string; readonly weightsFingerprint: string; readonly sourceArchitecture: string };
  readonly space: { readonly file: string; readonly name: string; readonly sha256: string };
  readonly data: { readonly seqLen: number; readonly calibration: TextRange; readonly validation: TextRange };
  readonly options: { readonly ranking: string; readonly ridgeGrid: readonly number[]; readonly seed: number };
  readonly versions: Readonly<Record<string, string>>;
  readonly created: string;
}

/** A job's record on disk: its score, and the hash of its weights file, written last so it marks completion. */
interface JobRecord {
  readonly score: CandidateScore;
  readonly weightsSha256: string;
}

export const sha256 = (bytes: string | Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** The fields that decide whether an existing library is this run's: everything but paths, dates and versions. */
function identity(m: LibraryManifest) {
  return { parent: { configSha256: m.parent.configSha256, weightsFingerprint: m.parent.weightsFingerprint }, space: m.space.sha256, data: m.data, options: m.options };
}

/**
 * A block library directory: manifest.json, jobs/<layer>.<variant>.json (scores) and
 * candidates/<layer>.<variant>.safetensors (fitted weights). Every file is written atomically, weights
 * before their record, so a killed run resumes with nothing half-done and nothing finished redone.
 */
export class BlockLibrary {
  private constructor(
    readonly dir: string,
    readonly manifest: LibraryManifest,
    private readonly done: Map<string, CandidateScore>,
  ) {}

  /** Opens the library at `dir`, creating it if absent; refuses a foreign or corrupted one. */
  static open(dir: string, manifest: LibraryManifest): BlockLibrary {
    const manifestPath = join(dir, 'manifest.json');
    if (existsSync(dir) && readdirSync(dir).length > 0 && !existsSync(manifestPath)) {
      fail(`${dir}: exists and is not a Tessera block library (no manifest.json); choose another --out or empty it`);
    }
    if (!existsSync(manifestPath)) {
      writeJsonAtomic(manifestPath, manifest); // first, so a kill right after leaves a library, not a stranger
      mkdirSync(join(dir, 'jobs'), { recursive: true });
      mkdirSync(join(dir, 'candidates'), { recursive: true });
      return new BlockLibrary(dir, manifest, new Map());
    }
    const existing = readLibraryManifest(dir);
    const a = JSON.stringify(identity(existing));
    const b = JSON.stringify(identity(manifest));
    if (a !== b) {
      const field = (['parent', 'space', 'data', 'options'] as const).find((k) => JSON.stringify(identity(existing)[k]) !== JSON.stringify(identity(manifest)[k]));
      fail(`${manifestPath}: this library was built for another ${field} (${JSON.stringify(identity(existing)[field!])} vs ${JSON.stringify(identity(manifest)[field!])}); use another --out to build a new one`);
    }
    mkdirSync(join(dir, 'jobs'), { recursive: true });
    mkdirSync(join(dir, 'candidates'), { recursive: true });
    return new BlockLibrary(dir, existing, readJobs(dir));
  }

  has(key: string): boolean {
    return this.done.has(key);
  }

  get completed(): number {
    return this.done.size;
  }

  /** Records a finished job: weights first, then the record that vouches for them. */
  write(score: CandidateScore, tensors: Record<string, Tensor>): void {
    const weightsPath = join(this.dir, 'candidates', `${score.key}.safetensors`);
    writeSafetensors(weightsPath, new Map(Object.entries(tensors)), { layer: String(score.layer), subBlock: score.subBlock });
    const record: JobRecord = { score, weightsSha256: sha256(readFileSync(weightsPath)) };
    writeJsonAtomic(join(this.dir, 'jobs', `${score.key}.json`), record);
    this.done.set(score.key, score);
  }

  scores(): CandidateScore[] {
    return [...this.done.values()].sort((a, b) => a.layer - b.layer || a.subBlock.localeCompare(b.subBlock) || a.key.localeCompare(b.key));
  }

  /** Reads a candidate's fitted weights back (by checkpoint spec key, e.g. "attention.o"). */
  weights(key: string): Record<string, Tensor> {
    const f = SafetensorsFile.open(join(this.dir, 'candidates', `${key}.safetensors`));
    try {
      return Object.fromEntries([...f.entries.keys()].map((name) => [name, f.read(name)]));
    } finally {
      f.close();
    }
  }

  /** scores.json: every candidate's scores, and the parent's validation LM loss they are relative to. */
  writeSummary(): void {
    const scores = this.scores();
    const parentNll = scores.length > 0 ? scores[0].lmLoss - scores[0].lmLossDelta : null;
    const summary = { manifest: this.manifest, parent: { validationNll: parentNll }, candidates: scores };
    writeFileAtomic(join(this.dir, 'scores.json'), JSON.stringify(summary, null, 2) + '\n');
  }
}

export function readLibraryManifest(dir: string): LibraryManifest {
  const path = join(dir, 'manifest.json');
  let m: LibraryManifest;
  try {
    m = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    fail(`${path}: corrupted block-library manifest (${(e as Error).message}); delete the directory to rebuild`);
  }
  if (m?.format !== LIBRARY_FORMAT) fail(`${path}: field "format" is ${JSON.stringify(m?.format)}; expected "${LIBRARY_FORMAT}"`);
  return m;
}

function readJobs(dir: string): Map<string, CandidateScore> {
  const done = new Map<string, CandidateScore>();
  for (const name of readdirSync(join(dir, 'jobs'))) {
    if (!name.endsWith('.json')) continue;
    const path = join(dir, 'jobs', name);
    let record: JobRecord;
    try {
      record = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      fail(`${path}: corrupted job record (not JSON); delete it to recompute that candidate`);
    }
    const key = name.slice(0, -'.json'.length);
    if (record?.score?.key !== key || typeof record.weightsSha256 !== 'string') fail(`${path}: corrupted job record (fields "score.key" / "weightsSha256"); delete it to recompute that candidate`);
    const weights = join(dir, 'candidates', `${key}.safetensors`);
    if (!existsSync(weights) || sha256(readFileSync(weights)) !== record.weightsSha256) {
      fail(`${weights}: missing or does not match its record ${path}; delete both to recompute that candidate`);
    }
    done.set(key, record.score);
  }
  return done;
}
