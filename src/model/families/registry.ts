import type { ModelConfig } from '../../arch/config.js';
import { decilm } from './decilm.js';
import type { ModelFamily } from './family.js';
import { llama } from './llama.js';
import { mistral } from './mistral.js';
import { qwen2 } from './qwen2.js';
import { qwen3 } from './qwen3.js';

/** Every family Tessera reads; registering one is a line here. */
export const FAMILIES: readonly ModelFamily[] = [llama, mistral, qwen2, qwen3, decilm];

export const SUPPORTED_ARCHITECTURES: readonly string[] = FAMILIES.flatMap((f) => f.architectures);

/** The family that reads this HuggingFace architecture, if any. */
export function familyOfArchitecture(architecture: string): ModelFamily | undefined {
  return FAMILIES.find((f) => f.architectures.includes(architecture));
}

/** The family a parsed config was read by. */
export function familyOf(config: ModelConfig): ModelFamily {
  const family = familyOfArchitecture(config.sourceArchitecture);
  if (family === undefined) throw new Error(`no model family reads ${config.sourceArchitecture}`);
  return family;
}
