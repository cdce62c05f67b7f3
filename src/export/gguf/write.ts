import { basename } from 'node:path';
import type { Checkpoint } from '../../model/checkpoint.js';
import { readModelConfig } from '../../model/config.js';
import { architectureViolations, runtimeTarget } from '../../targets/runtimes.js';
import { fail } from '../../util/errors.js';
import { deciMetadata, deciTensors, type GgufWeights } from './deci.js';
import { writeGguf } from './format.js';
import { tokenizerMetadata } from './tokenizer.js';

/**
 * A model directory (an exported or distilled child, or any checkpoint Tessera reads) as one GGUF file for
 * llama.cpp (and Ollama, LM Studio): its `deci` architecture, tokenizer and weights, read a layer at a time.
 * A model llama.cpp would not compute right is refused first, naming the layer and the rule.
 */
export function writeGgufModel(path: string, model: Checkpoint, weights: GgufWeights): void {
  const broken = architectureViolations(model.config, runtimeTarget('llama.cpp'), model.architecture);
  if (broken.length > 0) fail(`${model.dir}: llama.cpp would not run it right: ${broken[0]}${broken.length > 1 ? ` (and ${broken.length - 1} more)` : ''}; solve with --runtime llama.cpp`);
  const { raw } = readModelConfig(model.dir);
  const metadata = new Map([...deciMetadata(model.config, model.source, basename(model.dir)), ...tokenizerMetadata(model.dir, model.config.vocabSize, raw)]);
  writeGguf(path, metadata, deciTensors(model.config, model.source, weights));
}
