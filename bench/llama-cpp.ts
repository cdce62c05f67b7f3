/**
 * llama.cpp (through node-llama-cpp, a dev dependency) as a model `compareModels` times beside Tessera's graphs:
 * the same parent written as GGUF in float32, float32 K/V cache, the same threads, the same scenario.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel, type Llama, type Token } from 'node-llama-cpp';
import type { ExternalModel, ScenarioRun } from '../src/hardware/measure.js';
import type { Scenario } from '../src/hardware/types.js';
import { writeGgufModel } from '../src/export/gguf/write.js';
import { byteLevelAlphabet } from '../src/export/gguf/tokenizer.js';
import { openCheckpoint } from '../src/model/checkpoint.js';
import { Rng } from '../src/util/rng.js';

let llama: Llama | undefined;

/** node-llama-cpp's prebuilt CPU binaries, loaded once. */
export async function llamaCpp(): Promise<Llama> {
  llama ??= await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  return llama;
}

/**
 * A model directory written as float32 GGUF at `path`. A checkpoint of random weights has no tokenizer: it gets
 * GPT-2's 256 byte characters as its vocabulary's first tokens (the rest unused), which speed does not depend on.
 */
export function ggufOf(modelDir: string, path: string): string {
  if (!existsSync(join(modelDir, 'tokenizer.json'))) {
    const vocab = Object.fromEntries(byteLevelAlphabet().map((t, i) => [t, i]));
    writeFileSync(join(modelDir, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab, merges: [] }, pre_tokenizer: { type: 'ByteLevel' } }));
  }
  writeGgufModel(path, openCheckpoint(modelDir), 'F32');
  return path;
}

/**
 * A GGUF model run by llama.cpp for a batch-1 scenario: the prompt evaluated at once (prefill, up to the first
 * greedy token), then one evaluation per further token, as Tessera's graphs are timed.
 */
export function llamaCppModel(path: string, o: { readonly vocabSize: number; readonly threads: number }): ExternalModel {
  return {
    open: async (s: Scenario): Promise<ScenarioRun> => {
      if (s.batch !== 1) throw new Error(`llama.cpp is timed on batch-1 scenarios; ${s.name} has batch ${s.batch}`);
      const model = await (await llamaCpp()).loadModel({ modelPath: path });
      const context = await model.createContext({
        contextSize: s.prefillTokens + s.generatedTokens + 16, batchSize: s.prefillTokens, threads: { ideal: o.threads, min: o.threads },
        flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
      });
      const sequence = context.getSequence();
      const rng = new Rng(0x5eed);
      const prompt = Array.from({ length: s.prefillTokens }, () => rng.int(o.vocabSize) as Token);
      return {
        run: async () => {
          await sequence.clearHistory();
          const t0 = performance.now();
          let t1 = t0;
          let n = 0;
          for await (const _ of sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
            if (n === 0) t1 = performance.now();
            if (++n === s.generatedTokens) break;
          }
          return { prefillSeconds: (t1 - t0) / 1000, decodeSeconds: (performance.now() - t1) / 1000 };
        },
        release: async () => {
          await context.dispose();
          await model.dispose();
        },
      };
    },
  };
}
