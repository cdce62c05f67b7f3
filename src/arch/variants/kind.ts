import type { DeriveContext, Derived } from '../../bld/derive.js';
import type { Kernel, Step } from '../../hardware/kernels.js';
import type { Workload } from '../../hardware/types.js';
import type { FieldReader } from '../../model/json.js';
import type { SubBlockWeights } from '../../model/weights.js';
import type { EmitContext } from '../../onnx/emit.js';
import type { ModelConfig } from '../config.js';
import type { DeciSubBlockConfig } from '../decilm.js';
import type { SubBlock, Variant } from '../variant.js';

/** One tensor a sub-block holds: its role within the sub-block, its checkpoint name within the layer, its shape. */
export interface TensorRole {
  readonly role: string;
  /** The name after the layer prefix, e.g. `self_attn.q_proj.weight`. */
  readonly name: string;
  readonly shape: readonly number[];
}

/** Where a search-space sub-block section is read, for error messages that name the file, field and layer. */
export interface SpaceField {
  readonly file: string;
  /** The section's field path, e.g. `attention` or `overrides[2].ffn`. */
  readonly field: string;
  readonly layer: number;
}

/**
 * Everything one kind of variant means, in one place: its name in files, its size and cost, its tensors and
 * DeciLM form, how a search space offers it, its graph, its plain-TypeScript reference forward, and how a
 * candidate of this kind is derived from the parent and fitted. The rest of the code asks the registry
 * (`variants/registry.ts`), never `switch (kind)`.
 */
export interface VariantKind<V extends Variant = Variant> {
  readonly subBlock: SubBlock;
  readonly kind: V['kind'];
  /** Whether this kind removes the sub-block: it adds nothing to the residual stream and holds nothing. */
  readonly removesSubBlock: boolean;
  /** A stable, file-name-safe key for caches and library paths, e.g. `attn-gqa4`. */
  key(v: V): string;
  /** Short table label, e.g. `GQA 4`. */
  label(v: V): string;
  /** Words for reports, e.g. `GQA 4 KV heads`. */
  describe(v: V): string;
  /** What is wrong with this variant for a model (empty when valid). */
  problems(config: ModelConfig, v: V): string[];
  params(config: ModelConfig, v: V): number;
  /** K/V heads this sub-block caches per token (0: it keeps no cache). */
  cachedKvHeads(config: ModelConfig, v: V): number;
  /** Forward FLOPs over `batch` sequences of `seq` tokens, as the graphs execute them. */
  flops(config: ModelConfig, v: V, batch: number, seq: number): number;
  /** The kernels one forward step runs, for the roofline cost model. */
  kernels(config: ModelConfig, v: V, step: Step, workload: Workload): Kernel[];
  /** Its tensors, in checkpoint order (none for a no-op: not even a norm). */
  tensors(config: ModelConfig, v: V): readonly TensorRole[];
  /** Its DeciLM / Nemotron-NAS `block_configs` entry. */
  toDeci(config: ModelConfig, v: V): DeciSubBlockConfig;
  /** The variant a DeciLM entry describes, or null when the entry is another kind's. */
  fromDeci(entry: Readonly<Record<string, unknown>>, config: ModelConfig, where: (field: string) => string): V | null;
  /** The search-space keys of a sub-block section this kind reads (the schema lists the same). */
  readonly spaceKeys: readonly string[];
  /** The variants a search-space section offers of this kind for one layer. */
  fromSpace(section: FieldReader, config: ModelConfig, at: SpaceField): V[];
  /** Emits the sub-block into a decoder graph; returns what it adds to the residual stream, or null for nothing. */
  emit(ctx: EmitContext, w: SubBlockWeights<V>, x: string): string | null;
  /** The same computation in plain TypeScript over one sequence (rows of the residual stream), or null for nothing. */
  reference(config: ModelConfig, w: SubBlockWeights<V>, x: readonly Float64Array[]): Float64Array[] | null;
  /** The candidate built from the parent's sub-block (initialisation) and fitted on the parent's activations. */
  derive(ctx: DeriveContext, v: V): Promise<Derived<V>>;
  /** Fill colour in architecture pictures. */
  colour(config: ModelConfig, v: V): string;
}
