import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ModelConfig } from '../arch/config.js';
import { fromDeciBlockConfigs, toDeciBlockConfigs } from '../arch/decilm.js';
import type { Architecture } from '../arch/variant.js';
import type { BlockLibrary } from '../bld/library.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { TESSERA_FEATURES } from '../model/families/decilm.js';
import { readModelConfig } from '../model/config.js';
import { storedDtype } from '../model/checkpoint.js';
import { TORCH_DTYPES, type StoredDtype } from '../model/save.js';
import type { Run } from '../run/run.js';
import { readSpec } from '../run/spec.js';
import { ChildAssembler } from '../search/child.js';
import { architectureViolations, DEFAULT_RUNTIME, runtimeTarget } from '../targets/runtimes.js';
import { fail } from '../util/errors.js';
import { sha256 } from '../util/hash.js';
import { onnxAttentionFor, onnxAttentionOf, refuseExisting, writeModelDirectory, type OnnxAttention } from './model-dir.js';
import { readProvenance, type ChildProvenance } from './provenance.js';

/** An exported child: its directory and architecture. */
export interface ExportedChild {
  readonly dir: string;
  readonly architecture: Architecture;
  /** Already exported from the same spec; nothing was written. */
  readonly reused: boolean;
}

/** The DeciLM code of Nemotron-51B (the published model with linear attention), as auto_map names code in another repository. */
export const DECI_CODE_REPO = 'nvidia/Llama-3_1-Nemotron-51B-Instruct';
export const DECI_AUTO_MAP = {
  AutoConfig: `${DECI_CODE_REPO}--configuration_decilm.DeciLMConfig`,
  AutoModelForCausalLM: `${DECI_CODE_REPO}--modeling_decilm.DeciLMForCausalLM`,
} as const;

/** The parent's config.json turned into a DeciLM / Nemotron-NAS one with per-layer block_configs. */
export function deciConfigJson(parentRaw: Record<string, unknown>, config: ModelConfig, arch: Architecture, dtype: StoredDtype = 'F32'): Record<string, unknown> {
  return {
    ...parentRaw,
    architectures: ['DeciLMForCausalLM'],
    model_type: 'nemotron-nas',
    // transformers and vLLM load the modeling code of a published Nemotron-NAS model (trust_remote_code).
    auto_map: DECI_AUTO_MAP,
    // DeciLM computes head_dim as hidden / heads; keep an explicit one for loaders that read it.
    head_dim: config.headDim,
    num_key_value_heads: null,
    intermediate_size: null,
    block_configs: toDeciBlockConfigs(config, arch),
    torch_dtype: TORCH_DTYPES[dtype],
    ...(config.qkvBias ? { [TESSERA_FEATURES.qkvBias]: true } : {}),
    ...(config.qkNorm ? { [TESSERA_FEATURES.qkNorm]: true } : {}),
  };
}

/** What a DeciLM config.json cannot say about a child of this parent: the runtimes reading it would compute another model. */
export function deciCaveats(config: ModelConfig): string[] {
  return [
    ...(config.qkvBias ? ['q/k/v biases (Qwen2): DeciLM\'s modeling code and the runtimes that read block_configs add none; Tessera reads them back, and model.onnx computes them'] : []),
    ...(config.qkNorm ? ['per-head q/k norms (Qwen3): DeciLM\'s modeling code and the runtimes that read block_configs apply none; Tessera reads them back, and model.onnx computes them'] : []),
  ];
}

/**
 * Writes any architecture of a library's candidates as a model directory (config.json with DeciLM
 * block_configs, DeciLM tensor names): the one export path solutions and baselines share.
 */
export function exportArchitecture(parent: Checkpoint, library: BlockLibrary, architecture: Architecture, outDir: string, provenance: ChildProvenance, o: { replace?: boolean; dtype?: StoredDtype; onnx?: OnnxAttention } = {}): ExportedChild {
  refuseExisting(outDir, o.replace);
  const { raw } = readModelConfig(parent.dir);
  const weights = new ChildAssembler(parent.config, parent.source, library).source(architecture);
  const dtype = o.dtype ?? parent.dtype;
  const dir = writeModelDirectory(outDir, { configJson: deciConfigJson(raw, parent.config, architecture, dtype), config: parent.config, architecture, weights, companionsFrom: parent.dir, provenance, dtype, onnx: o.onnx }, o);
  return { dir, architecture, reused: false };
}

/**
 * The export stage: a solution of the run as a model directory, by default `children/<id>`. A child already
 * exported there from the same spec is kept; one from another spec is replaced (the run's own directory) or
 * refused (`out` given, unless `replace`).
 */
export function exportSolution(run: Run, id: string, o: { out?: string; replace?: boolean; target?: string; dtype?: StoredDtype; onnx?: OnnxAttention } = {}): ExportedChild {
  const specPath = run.paths.spec(id);
  const spec = readSpec(specPath);
  const specSha256 = sha256(readFileSync(specPath));
  const out = resolve(o.out ?? run.paths.child(id));
  const architecture = fromDeciBlockConfigs(specPath, run.config, spec.block_configs);
  // The runtime it was solved for (or the one asked for now) must run it: refuse before anything is written.
  const target = runtimeTarget(o.target ?? spec.request.target ?? DEFAULT_RUNTIME);
  const broken = architectureViolations(run.config, target, architecture);
  if (broken.length > 0) fail(`${specPath}: does not run in ${target.name}: ${broken[0]}${broken.length > 1 ? ` (and ${broken.length - 1} more)` : ''}; solve again with --runtime ${target.name}`);
  const parent = run.parent();
  const dtype = o.dtype ?? parent.dtype;
  const onnx = onnxAttentionFor(run.config, o.onnx);
  if (existsSync(out) && readProvenance(out)?.specSha256 === specSha256 && storedDtype(out) === dtype && onnxAttentionOf(out) === onnx) return { dir: out, architecture, reused: true };
  const provenance: ChildProvenance = { format: 'tessera-child', version: 1, parent: parent.dir, run: run.dir, solution: id, specSha256, hardware: spec.hardware.file, data: run.manifest.data };
  return exportArchitecture(parent, run.library(), architecture, out, provenance, { replace: o.replace ?? o.out === undefined, dtype, onnx });
}
