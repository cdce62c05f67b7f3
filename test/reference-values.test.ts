import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cpuRuntime } from '../src/onnx/runtime.js';
import { paragraphSequences } from '../src/data/sequences.js';
import { paragraphs, readText } from '../src/data/text.js';
import { greedyGenerate } from '../src/lm/generate.js';
import { perplexity } from '../src/lm/perplexity.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { loadTokenizer } from '../src/model/tokenizer.js';
import { DecoderSession } from '../src/onnx/session.js';
import { referenceForward } from '../src/reference/forward.js';
import { modelDir, SHARED, SHARED_MODELS, RUNTIME } from './support/fixtures.js';

/** Known-good values shipped with each shared model (from the upstream llama2.c forward). */
interface Reference {
  greedy_generation: { prompt: string; steps_incl_bos: number; bos_id: number; token_ids: number[] };
  probe: { text: string; token_ids_with_bos: number[]; logits_pos0_first8: number[]; logits_last_first8: number[] };
  eval_tinystories_head: { corpus: string; tokens: number; mean_nll: number };
}

for (const name of SHARED_MODELS) {
  describe(`${name} reproduces its reference.json`, () => {
    const dir = modelDir(name);
    const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Reference;
    const ck = loadCheckpoint(dir);
    const tokenizer = loadTokenizer(dir);
    const V = ck.config.vocabSize;

    it('tokenizes the probe text', () => {
      expect(tokenizer.encode(ref.probe.text)).toEqual(ref.probe.token_ids_with_bos);
    });

    it('gives the probe logits (≤ 1e-3), in the ONNX graph and in the reference forward', async () => {
      const ids = ref.probe.token_ids_with_bos;
      const session = await DecoderSession.create(ck.config, ck.weights, {}, RUNTIME);
      const logits = (await session.run({ ids: Int32Array.from(ids), batch: 1, seq: ids.length })).logits!.data;
      await session.release();
      const last = (ids.length - 1) * V;
      const plain = referenceForward(ck.config, ck.weights, ids).logits;
      for (let v = 0; v < 8; v++) {
        expect(Math.abs(logits[v] - ref.probe.logits_pos0_first8[v])).toBeLessThanOrEqual(1e-3);
        expect(Math.abs(logits[last + v] - ref.probe.logits_last_first8[v])).toBeLessThanOrEqual(1e-3);
        expect(Math.abs(plain[0][v] - ref.probe.logits_pos0_first8[v])).toBeLessThanOrEqual(1e-3);
        expect(Math.abs(plain[ids.length - 1][v] - ref.probe.logits_last_first8[v])).toBeLessThanOrEqual(1e-3);
      }
    });

    it('generates the greedy token ids', async () => {
      const g = ref.greedy_generation;
      const session = await DecoderSession.create(ck.config, ck.weights, { logits: 'last' }, cpuRuntime(1));
      const ids = await greedyGenerate(session, tokenizer.encode(g.prompt), g.steps_incl_bos, [g.bos_id]);
      await session.release();
      expect(ids).toEqual(g.token_ids);
    });

    it('scores the TinyStories head to within 0.005 nats of the reference NLL', async () => {
      const e = ref.eval_tinystories_head;
      const docs = paragraphs(readText(join(SHARED, e.corpus))).slice(0, 300);
      const seqs = paragraphSequences(tokenizer, docs, ck.config.maxPositions);
      const r = await perplexity(ck.config, ck.weights, cpuRuntime(1), seqs);
      expect(r.tokens).toBe(e.tokens);
      expect(Math.abs(r.meanNll - e.mean_nll)).toBeLessThanOrEqual(0.005);
    });
  });
}
