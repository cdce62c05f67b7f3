import { blockKey } from '../arch/variants/registry.js';
import { type Architecture } from '../arch/variant.js';
import type { ModelConfig } from '../arch/config.js';
import { logSoftmaxRows } from '../bld/activations.js';
import { windowBatches, type WindowSet } from '../data/sequences.js';
import { compareToReference, hasTarget, type ReferenceDistribution } from '../eval/kl.js';
import type { ModelWeights } from '../model/weights.js';
import { DecoderSession } from '../onnx/session.js';
import { cpuRuntime } from '../onnx/runtime.js';

/** The parent's next-token distribution on a window set: what children are compared against. */
export async function referenceDistribution(config: ModelConfig, parent: ModelWeights, set: WindowSet, seqLen: number, threads: number): Promise<ReferenceDistribution> {
  const V = config.vocabSize;
  const tokens = set.count * seqLen;
  const logprobs = new Float32Array(tokens * V);
  const session = await DecoderSession.create(config, parent, {}, cpuRuntime(threads));
  try {
    for (const { batch, from, to } of windowBatches(set.count, seqLen, 1024)) {
      const r = await session.run({ ids: set.ids.subarray(from, to), batch, seq: seqLen });
      logSoftmaxRows(r.logits!.data, V, logprobs, from * V);
    }
  } finally {
    await session.release();
  }
  const targets = new Int32Array(tokens);
  for (let t = 0; t < tokens; t++) if (hasTarget(t, seqLen)) targets[t] = set.ids[t + 1];
  return { windows: set.count, seqLen, vocab: V, logprobs, targets };
}

/** Evaluates whole children against the parent (the search's true objective), caching by architecture. */
export class ChildEvaluator {
  private readonly cache = new Map<string, { kl: number; lmLoss: number }>();

  constructor(
    private readonly config: ModelConfig,
    private readonly set: WindowSet,
    private readonly reference: ReferenceDistribution,
    private readonly weightsOf: (arch: Architecture) => ModelWeights,
    private readonly threads: number,
  ) {}

  get evaluations(): number {
    return this.cache.size;
  }

  async evaluate(arch: Architecture): Promise<{ kl: number; lmLoss: number }> {
    const key = arch.map(blockKey).join('|');
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    const session = await DecoderSession.create(this.config, this.weightsOf(arch), { logits: 'score' }, cpuRuntime(this.threads));
    try {
      const r = await compareToReference(session, this.reference, (from, to, batch) => ({ ids: this.set.ids.subarray(from, to), batch, seq: this.reference.seqLen }));
      this.cache.set(key, r);
      return r;
    } finally {
      await session.release();
    }
  }
}
