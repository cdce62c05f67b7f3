import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { ModelConfig } from '../arch/config.js';
import { fromDeciBlockConfigs, toDeciBlockConfigs } from '../arch/decilm.js';
import type { Architecture } from '../arch/variant.js';
import { BlockLibrary, readLibraryManifest } from '../bld/library.js';
import { loadCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { readModelConfig } from '../model/config.js';
import { isObject, readJsonFile } from '../model/json.js';
import { writeSafetensors } from '../model/safetensors.js';
import { checkpointTensors } from '../model/save.js';
import type { ModelWeights } from '../model/weights.js';
import { buildDecoderGraph } from '../onnx/decoder-graph.js';
import { ChildAssembler } from '../search/child.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { fail } from '../util/errors.js';

/** What `tessera export` reads from a solution's spec.json. */
export interface SpecFile {
  readonly id: string;
  readonly parent: { readonly dir: string };
  readonly library: string;
  readonly hardware: { readonly file: string };
  readonly block_configs: unknown;
  readonly [key: string]: unknown;
}

export function readSpec(path: string): SpecFile {
  const spec = readJsonFile(path, 'solution spec');
  if (!isObject(spec) || spec.format !== 'tessera-spec') fail(`${path}: field "format" is ${JSON.stringify(isObject(spec) ? spec.format : spec)}; expected "tessera-spec"`);
  for (const field of ['parent', 'library', 'hardware', 'block_configs']) if (spec[field] === undefined) fail(`${path}: field "${field}" is missing`);
  return spec as unknown as SpecFile;
}

/** Files that travel with a model besides its weights, copied from the parent when present. */
const COMPANIONS = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

/** The parent's config.json turned into a DeciLM / Nemotron-NAS one with per-layer block_configs. */
export function deciConfigJson(parentRaw: Record<string, unknown>, config: ModelConfig, arch: Architecture): Record<string, unknown> {
  return {
    ...parentRaw,
    architectures: ['DeciLMForCausalLM'],
    model_type: 'nemotron-nas',
    // DeciLM computes head_dim as hidden / heads; keep an explicit one for loaders that read it.
    head_dim: config.headDim,
    num_key_value_heads: null,
    intermediate_size: null,
    block_configs: toDeciBlockConfigs(config, arch),
    torch_dtype: 'float32',
  };
}

/**
 * Writes a child as a model directory: config.json (DeciLM block_configs), model.safetensors (DeciLM tensor
 * names), model.onnx (+ model.onnx.data), the parent's tokenizer files and tessera.json (provenance). It is
 * built in a temporary sibling directory and renamed into place, so a kill never leaves a half-written model.
 */
export function exportChild(solutionDir: string, outDir: string, opts: { replace?: boolean } = {}): { dir: string; architecture: Architecture; weights: ModelWeights; config: ModelConfig } {
  const specPath = join(solutionDir, 'spec.json');
  const spec = readSpec(specPath);
  const ck = loadCheckpoint(spec.parent.dir);
  const architecture = fromDeciBlockConfigs(specPath, ck.config, spec.block_configs);
  const library = BlockLibrary.open(spec.library, readLibraryManifest(spec.library));
  return exportArchitecture(ck, library, architecture, outDir, { exportedFrom: resolve(solutionDir), hardware: spec.hardware.file, spec }, opts);
}

/**
 * Writes any architecture of a library's candidates as a model directory (the one export path that
 * solutions and baselines share). `provenance` goes to tessera.json with the library's data ranges.
 */
export function exportArchitecture(ck: Checkpoint, library: BlockLibrary, architecture: Architecture, outDir: string, provenance: { hardware: string } & Record<string, unknown>, opts: { replace?: boolean } = {}): { dir: string; architecture: Architecture; weights: ModelWeights; config: ModelConfig } {
  const out = resolve(outDir);
  if (existsSync(out) && !opts.replace) fail(`${out}: already exists; choose another --out or remove it`);
  const { raw } = readModelConfig(ck.dir);
  const weights = new ChildAssembler(ck.config, ck.weights, library).weights(architecture);
  const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    writeJsonAtomic(join(tmp, 'config.json'), deciConfigJson(raw, ck.config, architecture));
    writeSafetensors(join(tmp, 'model.safetensors'), checkpointTensors(ck.config, architecture, weights), { format: 'pt' });
    buildDecoderGraph(ck.config, weights).writeTo(join(tmp, 'model.onnx'));
    for (const f of COMPANIONS) if (existsSync(join(ck.dir, f))) copyFileSync(join(ck.dir, f), join(tmp, f));
    writeJsonAtomic(join(tmp, 'tessera.json'), { ...provenance, parent: ck.dir, libraryData: library.manifest.data });
    if (opts.replace) rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { dir: out, architecture, weights, config: ck.config };
}
