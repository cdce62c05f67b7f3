import type { DeciBlockConfig } from '../arch/decilm.js';
import type { TextRange } from '../data/sequences.js';
import { isObject, readJsonFile } from '../model/json.js';
import type { BudgetSpec, Metric } from '../search/formulate.js';
import type { SearchRecord } from '../search/strategies/strategy.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { fail } from '../util/errors.js';

export const SPEC_FORMAT = 'tessera-spec';
export const SPEC_VERSION = 2;

/** What a solution was asked for: equal requests give equal solutions, so a solved request is reused, not solved again. */
export interface SolveRequest {
  readonly profile: { readonly file: string; readonly sha256: string };
  readonly budget: BudgetSpec;
  readonly metric: Metric;
  readonly strategy: string;
  readonly solver: string;
  readonly timeLimitSeconds: number;
  readonly tabuIterations: number;
  readonly tabuSeconds: number | null;
  readonly samples: number;
  readonly diversity: number;
  readonly seed: number;
  /** The block library it was solved on (a hash of its identity). */
  readonly library: string;
  /** The inference runtime the child must run in (targets/runtimes.ts); absent in specs before targets: 'onnx'. */
  readonly target?: string;
}

/** A child's predicted cost in one scenario of the profile. */
export interface PredictedScenario {
  readonly scenario: string;
  readonly prefillMs: number;
  readonly decodeMsPerToken: number;
  readonly totalMs: number;
  readonly tokensPerSecond: number;
  readonly speedup: number;
  readonly weightBytes: number;
  readonly kvCacheBytes: number;
  readonly fitsInMemory: boolean;
}

/** One solution: the architecture chosen for a request, what it is predicted to cost, and how good it is. */
export interface Spec {
  readonly format: typeof SPEC_FORMAT;
  readonly version: typeof SPEC_VERSION;
  readonly id: string;
  /** Which of the request's diverse solutions (1 for the first). */
  readonly index: number;
  /** Asked for by `tessera solve`/`search`, or traced for the report's frontier. */
  readonly origin: 'solve' | 'frontier';
  readonly run: string;
  readonly request: SolveRequest;
  readonly parent: { readonly dir: string; readonly sourceArchitecture: string; readonly params: number };
  readonly space: { readonly file: string; readonly name: string };
  readonly hardware: { readonly file: string; readonly name: string; readonly device: string; readonly costs: 'roofline' | 'measured' };
  /** Variant keys per layer, and the same as DeciLM block_configs (what other tools read). */
  readonly architecture: readonly { readonly attention: string; readonly ffn: string }[];
  readonly block_configs: readonly DeciBlockConfig[];
  readonly params: number;
  readonly predicted: readonly PredictedScenario[];
  readonly quality: {
    readonly metric: Metric;
    /** The summed library scores of the choice (what the MIP minimises). */
    readonly additive: number;
    /** The assembled child on the library's validation windows: KL from the parent, and LM losses. */
    readonly kl: number;
    readonly lmLoss: number;
    readonly parentLmLoss: number;
    readonly on: TextRange;
  };
  readonly search: SearchRecord;
}

export function writeSpec(path: string, spec: Spec): void {
  writeJsonAtomic(path, spec);
}

/** Reads a spec.json; every problem names the file and field. */
export function readSpec(path: string): Spec {
  const spec = readJsonFile(path, 'solution spec');
  if (!isObject(spec) || spec.format !== SPEC_FORMAT) fail(`${path}: field "format" is ${JSON.stringify(isObject(spec) ? spec.format : spec)}; expected "${SPEC_FORMAT}"`);
  if (spec.version !== SPEC_VERSION) fail(`${path}: field "version" is ${JSON.stringify(spec.version)}; this Tessera reads version ${SPEC_VERSION} (solve again to rewrite it)`);
  const expected: Record<string, string> = { id: 'string', index: 'number', origin: 'string', run: 'string', request: 'object', parent: 'object', space: 'object', hardware: 'object', architecture: 'object', block_configs: 'object', params: 'number', predicted: 'object', quality: 'object', search: 'object' };
  for (const [field, type] of Object.entries(expected)) {
    if (typeof spec[field] !== type || spec[field] === null) fail(`${path}: field "${field}" is ${JSON.stringify(spec[field] ?? null)}; expected a${type === 'object' ? 'n' : ''} ${type}`);
  }
  return spec as unknown as Spec;
}
