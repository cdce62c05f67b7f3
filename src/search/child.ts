import { variantKey } from '../arch/variants/registry.js';
import { SUB_BLOCKS, type Architecture } from '../arch/variant.js';
import type { ModelConfig } from '../arch/config.js';
import type { BlockLibrary } from '../bld/library.js';
import { layerWeightsFrom, type ModelWeights } from '../model/weights.js';
import { fail } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';

/**
 * Assembles a child's weights: the parent's embeddings, final norm and LM head, and in each layer the
 * library's fitted candidates for the chosen attention and FFN variants. Candidate files are read once.
 */
export class ChildAssembler {
  private readonly cache = new Map<string, Record<string, Tensor>>();

  constructor(
    private readonly config: ModelConfig,
    private readonly parent: ModelWeights,
    private readonly library: BlockLibrary,
  ) {}

  private tensors(key: string): Record<string, Tensor> {
    let t = this.cache.get(key);
    if (t === undefined) this.cache.set(key, (t = this.library.weights(key)));
    return t;
  }

  weights(arch: Architecture): ModelWeights {
    const layers = arch.map((block, i) => {
      const all: Record<string, Tensor> = {};
      for (const sub of SUB_BLOCKS) Object.assign(all, this.tensors(`${i}.${variantKey(sub, block[sub])}`));
      return layerWeightsFrom(this.config, block, (key) => {
        const t = all[key];
        if (t === undefined) fail(`${this.library.dir}: candidate of layer ${i} lacks tensor "${key}"; the library is corrupted, rebuild it`);
        return t;
      });
    });
    return { ...this.parent, layers };
  }
}
