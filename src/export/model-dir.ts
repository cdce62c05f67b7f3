import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ModelConfig } from '../arch/config.js';
import type { Architecture } from '../arch/variant.js';
import { writeSourceSafetensors, type StoredDtype } from '../model/save.js';
import { configText } from '../arch/decilm.js';
import { sourceOf, type ModelWeights, type WeightSource } from '../model/weights.js';
import { buildDecoderGraph, fusedAttentionRuns } from '../onnx/decoder-graph.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { fail } from '../util/errors.js';
import { literal, removeLeftovers } from '../util/leftovers.js';
import { writeProvenance, type ChildProvenance } from './provenance.js';

/** Files that travel with a model besides its weights, copied from where it came from when present. */
const COMPANIONS = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

/** What a child model directory holds. */
export interface ModelDirectory {
  readonly configJson: Record<string, unknown>;
  readonly config: ModelConfig;
  readonly architecture: Architecture;
  /** In memory, or read a layer at a time while the files are written. */
  readonly weights: ModelWeights | WeightSource;
  /** The directory whose tokenizer files it carries. */
  readonly companionsFrom: string;
  readonly provenance: ChildProvenance;
  /** Further JSON files, by name. */
  readonly extra?: Readonly<Record<string, unknown>>;
  /** The dtype of model.safetensors (default float32; model.onnx is float32 always). */
  readonly dtype?: StoredDtype;
  /** model.onnx's attention: onnxruntime's fused kernel (default where it runs the model), or standard ONNX ops for other ONNX runtimes. */
  readonly onnx?: OnnxAttention;
}

/** How model.onnx computes attention (see `DecoderGraphOptions.fusedAttention`). */
export type OnnxAttention = 'fused' | 'standard';
export const ONNX_ATTENTIONS: readonly OnnxAttention[] = ['fused', 'standard'];
/**
 * The attention asked for, or by default onnxruntime's fused kernel wherever it runs the model (`fusedAttentionRuns`);
 * refuses the fused kernel for a model it cannot run.
 */
export function onnxAttentionFor(config: ModelConfig, asked: OnnxAttention | undefined): OnnxAttention {
  if (asked === 'fused' && !fusedAttentionRuns(config)) {
    fail(`--onnx fused: onnxruntime's GroupQueryAttention needs a head size that is a multiple of 8, and this model's is ${config.headDim}; use --onnx standard`);
  }
  return asked ?? (fusedAttentionRuns(config) ? 'fused' : 'standard');
}

/** The attention a model directory's model.onnx was written with: a fused graph imports onnxruntime's contrib domain. */
export function onnxAttentionOf(dir: string): OnnxAttention | null {
  const path = join(dir, 'model.onnx');
  if (!existsSync(path)) return null;
  return readFileSync(path).includes('com.microsoft') ? 'fused' : 'standard';
}

/** The absolute output directory; an existing one is refused unless it may be replaced. */
export function refuseExisting(outDir: string, replace = false): string {
  const out = resolve(outDir);
  if (existsSync(out) && !replace) fail(`${out}: already exists; choose another --out or remove it`);
  return out;
}

/**
 * Writes a model directory: config.json, model.safetensors (float32, checkpoint names), model.onnx (+ .data),
 * the tokenizer files and tessera.json (provenance). It is built in a temporary sibling directory and renamed
 * into place, so a kill never leaves a half-written model; an existing `out` is refused unless `replace`.
 */
export function writeModelDirectory(outDir: string, m: ModelDirectory, o: { replace?: boolean } = {}): string {
  const out = refuseExisting(outDir, o.replace);
  removeLeftovers(dirname(out), new RegExp(`^\\.${literal(basename(out))}\\.partial-(\\d+)$`));
  const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    writeFileAtomic(join(tmp, 'config.json'), configText(m.configJson));
    writeSourceSafetensors(join(tmp, 'model.safetensors'), m.config, m.architecture, sourceOf(m.weights), { metadata: { format: 'pt' }, dtype: m.dtype });
    const onnxPath = join(tmp, 'model.onnx');
    buildDecoderGraph(m.config, m.weights, { fusedAttention: onnxAttentionFor(m.config, m.onnx) === 'fused' }, { file: onnxPath }).writeTo(onnxPath);
    for (const f of COMPANIONS) if (existsSync(join(m.companionsFrom, f))) copyFileSync(join(m.companionsFrom, f), join(tmp, f));
    writeProvenance(tmp, m.provenance);
    for (const [name, value] of Object.entries(m.extra ?? {})) writeJsonAtomic(join(tmp, name), value);
    if (o.replace) rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return out;
}
