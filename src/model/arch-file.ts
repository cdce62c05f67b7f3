import type { ModelConfig } from '../arch/config.js';
import { architectureProblems } from '../arch/config.js';
import { fromDeciBlockConfigs } from '../arch/decilm.js';
import type { Architecture } from '../arch/variant.js';
import { fail } from '../util/errors.js';
import { isObject, readJsonFile } from './json.js';

/**
 * Reads a child architecture from any JSON file with DeciLM `block_configs`: a Tessera spec.json or an
 * exported (or Nemotron) config.json.
 */
export function loadArchitectureFile(path: string, config: ModelConfig): Architecture {
  const raw = readJsonFile(path, 'architecture spec');
  if (!isObject(raw) || raw.block_configs === undefined) fail(`${path}: field "block_configs" is missing; expected DeciLM block_configs, one entry per layer`);
  const arch = fromDeciBlockConfigs(path, config, raw.block_configs);
  const problems = architectureProblems(config, arch);
  if (problems.length > 0) fail(`${path}: ${problems[0]}`);
  return arch;
}
