import { join } from 'node:path';
import { architectureProblems, parentArchitecture, type ModelConfig } from '../arch/config.js';
import type { Architecture } from '../arch/variant.js';
import { fail } from '../util/errors.js';
import { familyOfArchitecture, SUPPORTED_ARCHITECTURES } from './families/registry.js';
import { FieldReader, isObject, readJsonFile } from './json.js';

/** What config.json says: the global config and the architecture of each layer. */
export interface ModelSpec {
  readonly config: ModelConfig;
  readonly architecture: Architecture;
}

/** Reads and checks `config.json` of a HuggingFace checkpoint directory. */
export function readModelConfig(dir: string): ModelSpec & { raw: Record<string, unknown>; file: string } {
  const file = join(dir, 'config.json');
  const raw = readJsonFile(file, 'model config');
  if (!isObject(raw)) fail(`${file}: expected a JSON object`);
  return { ...parseModelSpec(file, raw), raw, file };
}

/** A config.json object read by the family its `architectures` names; every error names the file and field. */
export function parseModelSpec(file: string, raw: Record<string, unknown>): ModelSpec {
  const archs = raw.architectures;
  const source = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : null;
  const family = source === null ? undefined : familyOfArchitecture(source);
  if (source === null || family === undefined) {
    fail(
      `${file}: field "architectures" is ${JSON.stringify(archs ?? null)}; expected one of ${SUPPORTED_ARCHITECTURES.join(', ')} ` +
        `(Llama-family decoders: RMSNorm, RoPE, GQA attention, SwiGLU FFN)`,
    );
  }
  const { config, architecture } = family.read(new FieldReader(file, raw), source);
  const arch = architecture ?? parentArchitecture(config);
  const problems = architectureProblems(config, arch);
  if (problems.length > 0) fail(`${file}: ${problems[0]}`);
  return { config, architecture: arch };
}

export function parseModelConfig(file: string, raw: Record<string, unknown>): ModelConfig {
  return parseModelSpec(file, raw).config;
}
