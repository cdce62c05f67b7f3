import { variantKey } from '../arch/variants/registry.js';
import { SUB_BLOCKS, type Architecture } from '../arch/variant.js';
import type { ModelConfig } from '../arch/config.js';
import type { BlockLibrary } from '../bld/library.js';
import { layerWeightsFrom, materialize, withLayers, type LayerWeights, type ModelWeights, type WeightSource } from '../model/weights.js';
import { fail } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';

/**
 * Assembles a child: the parent's embeddings, final norm and LM head, and in each layer the library's fitted
 * candidates for the chosen attention and FFN variants, read from their files when the layer is used.
 */
export class ChildAssembler {
  constructor(
    private readonly config: ModelConfig,
    private readonly parent: WeightSource,
    private readonly library: BlockLibrary,
  ) {}

  /** The child as a source: each layer read from the library as a stage reaches it. */
  source(arch: Architecture): WeightSource {
    return withLayers(this.parent, arch, (i) => this.layer(arch, i));
  }

  /** The child with every weight in memory (small models). */
  weights(arch: Architecture): ModelWeights {
    return materialize(this.source(arch));
  }

  private layer(arch: Architecture, i: number): LayerWeights {
    const block = arch[i];
    const all: Record<string, Tensor> = {};
    for (const sub of SUB_BLOCKS) Object.assign(all, this.library.weights(`${i}.${variantKey(sub, block[sub])}`));
    return layerWeightsFrom(this.config, block, (key) => {
      const t = all[key];
      if (t === undefined) fail(`${this.library.dir}: candidate of layer ${i} lacks tensor "${key}"; the library is corrupted, rebuild it`);
      return t;
    });
  }
}
