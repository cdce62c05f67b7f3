import type { Architecture } from '../arch/variant.js';
import { blockKey } from '../arch/variants/registry.js';
import { modelDivergence } from '../lm/divergence.js';
import type { Runtime } from '../onnx/runtime.js';
import type { Run } from '../run/run.js';
import { ChildAssembler } from './child.js';

/** A child's quality as the search sees it: KL from the parent and LM loss, per token of the library's validation windows. */
export interface ChildQuality {
  readonly kl: number;
  readonly lmLoss: number;
}

/**
 * The search's true objective: the assembled child's divergence from the parent on the validation windows
 * (not the additive sum of per-candidate scores the MIP sees). Children are assembled from the library's
 * candidates and cached by architecture, so a strategy, a frontier and a report never evaluate one twice.
 */
export class ChildObjective {
  private readonly cache = new Map<string, Promise<ChildQuality>>();

  private constructor(
    private readonly run: Run,
    private readonly runtime: Runtime,
    private readonly assembler: ChildAssembler,
  ) {}

  /** Distinct children evaluated so far. */
  get evaluations(): number {
    return this.cache.size;
  }

  evaluate(arch: Architecture): Promise<ChildQuality> {
    const key = arch.map(blockKey).join('|');
    let q = this.cache.get(key);
    if (q === undefined) {
      q = (async () => {
        const ck = this.run.parent();
        const parentKey = JSON.stringify(ck.architecture);
        const weights = JSON.stringify(arch) === parentKey ? ck.source : this.assembler.source(arch);
        return modelDivergence(ck.config, weights, this.run.data().validation.ids, await this.run.reference(this.runtime), this.runtime);
      })();
      this.cache.set(key, q);
    }
    return q;
  }

  /** One objective per run and process: every stage that evaluates children shares its cache. */
  static of(run: Run, runtime: Runtime): ChildObjective {
    let o = objectives.get(run);
    if (o === undefined) {
      const ck = run.parent();
      objectives.set(run, (o = new ChildObjective(run, runtime, new ChildAssembler(ck.config, ck.source, run.library()))));
    }
    return o;
  }
}

const objectives = new WeakMap<Run, ChildObjective>();
