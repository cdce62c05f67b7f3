import type { ModelConfig } from '../arch/config.js';
import { intermediateToFfnMult } from '../arch/ffn-mult.js';
import type { Architecture, AttentionVariant, BlockConfig, FfnVariant } from '../arch/variant.js';
import type { SearchSpace } from '../space/types.js';
import { fail } from '../util/errors.js';

/**
 * What each inference runtime loads and computes right, read in its code and seen in runs: the variant kinds,
 * positions and FFN widths a child for it may use. `tessera score/solve/search --runtime` search only children it
 * runs; `tessera export` refuses one that breaks its rules. The README prints this table (`tessera runtimes`).
 */
export interface RuntimeTarget {
  readonly name: string;
  /** What it is and how it reads a child. */
  readonly title: string;
  readonly attention: readonly AttentionVariant['kind'][];
  readonly ffn: readonly FfnVariant['kind'][];
  /** Layer 0's attention must compute: the runtime reads the head size (or the residual's start) there. */
  readonly firstAttention: boolean;
  /** The last layer's FFN must compute. */
  readonly lastFfn: boolean;
  /** A no-op FFN only beside a no-op attention: otherwise the runtime drops the attention's output, silently. */
  readonly noopFfnOnlyWithNoopAttention: boolean;
  /** FFN widths must be DeciLM's ffn_mult encoding (int(2·m·hidden/3) rounded up to 256): the only width it reads. */
  readonly ffnMult: boolean;
  /** Reads Qwen's q/k/v biases and per-head q/k norms (which DeciLM's config cannot state). */
  readonly qwenFeatures: boolean;
  /** Computes Mistral's sliding-window attention. */
  readonly slidingWindow: boolean;
  /** How to load an exported child (`<child>` its directory). */
  readonly load: string;
}

const ALL_ATTENTION: readonly AttentionVariant['kind'][] = ['gqa', 'linear', 'noop'];
const ALL_FFN: readonly FfnVariant['kind'][] = ['swiglu', 'linear', 'noop'];
const DECI = { firstAttention: false, lastFfn: false, noopFfnOnlyWithNoopAttention: false, ffnMult: true, qwenFeatures: false, slidingWindow: true } as const;

export const RUNTIMES: readonly RuntimeTarget[] = [
  {
    name: 'onnx', title: "Tessera's own ONNX graph (onnxruntime, any provider)", attention: ALL_ATTENTION, ffn: ALL_FFN,
    firstAttention: false, lastFfn: false, noopFfnOnlyWithNoopAttention: false, ffnMult: false, qwenFeatures: true, slidingWindow: true,
    load: "new ort.InferenceSession('<child>/model.onnx')",
  },
  {
    name: 'hf', title: 'transformers with the Nemotron-NAS DeciLM code (trust_remote_code)', attention: ALL_ATTENTION, ffn: ALL_FFN, ...DECI,
    load: "AutoModelForCausalLM.from_pretrained('<child>', trust_remote_code=True)",
  },
  {
    name: 'vllm', title: "vLLM's nemotron_nas model (no linear replacements; layer 0's attention read for its residual)", attention: ['gqa', 'noop'], ffn: ['swiglu', 'noop'], ...DECI, firstAttention: true,
    load: 'vllm serve <child> --trust-remote-code',
  },
  {
    name: 'sglang', title: "SGLang's DeciLM model (no linear replacements)", attention: ['gqa', 'noop'], ffn: ['swiglu', 'noop'], ...DECI,
    load: 'python -m sglang.launch_server --model-path <child> --trust-remote-code',
  },
  {
    name: 'trt-llm', title: "TensorRT-LLM's NemotronNAS model", attention: ALL_ATTENTION, ffn: ALL_FFN, ...DECI,
    load: 'trtllm-serve <child> --trust_remote_code',
  },
  {
    name: 'llama.cpp', title: "llama.cpp's deci architecture (tessera export --format gguf; also Ollama, LM Studio)", attention: ALL_ATTENTION, ffn: ['swiglu', 'noop'], ...DECI,
    firstAttention: true, lastFfn: true, noopFfnOnlyWithNoopAttention: true, ffnMult: false, slidingWindow: false,
    load: 'llama-cli -m <child>.gguf',
  },
  {
    name: 'mlx', title: "mlx-lm's nemotron-nas model", attention: ALL_ATTENTION, ffn: ALL_FFN, ...DECI,
    load: 'mlx_lm.generate --model <child> --trust-remote-code',
  },
];

export const DEFAULT_RUNTIME = 'onnx';

export function runtimeTarget(name: string, option = '--runtime'): RuntimeTarget {
  return RUNTIMES.find((r) => r.name === name) ?? fail(`option ${option}: "${name}" is not a runtime; expected one of ${RUNTIMES.map((r) => r.name).join(', ')}`);
}

/** Why a block at layer `layer` of `layers` breaks the runtime's rules (one line), or null when it runs there. */
export function blockViolation(config: ModelConfig, target: RuntimeTarget, block: BlockConfig, layer: number, layers: number): string | null {
  const { attention, ffn } = block;
  if (!target.attention.includes(attention.kind)) return `${attention.kind} attention is not computed by ${target.name}`;
  if (!target.ffn.includes(ffn.kind)) return `a ${ffn.kind} FFN is not computed by ${target.name}`;
  if (target.firstAttention && layer === 0 && attention.kind === 'noop') return `${target.name} needs layer 0's attention`;
  if (target.lastFfn && layer === layers - 1 && ffn.kind === 'noop') return `${target.name} needs the last layer's FFN`;
  if (target.noopFfnOnlyWithNoopAttention && ffn.kind === 'noop' && attention.kind !== 'noop') return `${target.name} drops the attention's output where the FFN is a no-op (a no-op FFN only where the attention is one too)`;
  if (target.ffnMult && ffn.kind === 'swiglu' && intermediateToFfnMult(ffn.intermediate, config.hiddenSize) === null) {
    return `FFN width ${ffn.intermediate} is not a DeciLM ffn_mult width (int(2·m·${config.hiddenSize}/3) rounded up to 256), the only width ${target.name} reads`;
  }
  return null;
}

/** Why a model of this config cannot run in the runtime at all, or null. */
export function configViolation(config: ModelConfig, target: RuntimeTarget): string | null {
  if (!target.slidingWindow && config.slidingWindow !== null) return `${target.name} has no sliding-window attention (Mistral's ${config.slidingWindow} tokens): use --runtime onnx`;
  if (target.qwenFeatures) return null;
  if (config.qkvBias) return `${target.name} reads DeciLM configs, which cannot state q/k/v biases (Qwen2): use --runtime onnx`;
  if (config.qkNorm) return `${target.name} reads DeciLM configs, which cannot state per-head q/k norms (Qwen3): use --runtime onnx`;
  return null;
}

/** Every rule an architecture breaks, as "layer i: why" lines (empty: it runs there). */
export function architectureViolations(config: ModelConfig, target: RuntimeTarget, arch: Architecture): string[] {
  const whole = configViolation(config, target);
  if (whole !== null) return [whole];
  return arch.flatMap((block, i) => {
    const why = blockViolation(config, target, block, i, arch.length);
    return why === null ? [] : [`layer ${i}: ${why}`];
  });
}

/** The space with only the blocks the runtime runs at each layer (and the sub-block variants they use). */
export function restrictSpace(config: ModelConfig, space: SearchSpace, target: RuntimeTarget): SearchSpace {
  const whole = configViolation(config, target);
  if (whole !== null) fail(`option --runtime: ${whole}`);
  const layers = space.layers.map((l, i) => {
    const blocks = l.blocks.filter((b) => blockViolation(config, target, b, i, space.layers.length) === null);
    if (blocks.length === 0) {
      const why = blockViolation(config, target, l.blocks[0], i, space.layers.length);
      fail(`${space.file}: no block the space offers at layer ${i} runs in ${target.name} (e.g. ${why}); widen the space or choose another --runtime`);
    }
    const used = (v: object) => blocks.some((b) => b.attention === v || b.ffn === v);
    return { attention: l.attention.filter(used), ffn: l.ffn.filter(used), blocks };
  });
  return { ...space, layers };
}

/** The table of runtimes and what each runs, as Markdown (`tessera runtimes` prints it; the README holds a copy, checked by a test). */
export function runtimeTable(): string {
  const rows = RUNTIMES.map((r) => {
    const positions = [r.firstAttention && "layer 0's attention computes", r.lastFfn && "the last layer's FFN computes", r.noopFfnOnlyWithNoopAttention && 'a no-op FFN only beside a no-op attention'].filter(Boolean).join('; ') || 'any';
    const kinds = (all: readonly string[]) => all.join(', ');
    return `| \`${r.name}\` | ${r.title} | ${kinds(r.attention)} | ${kinds(r.ffn)} | ${positions} | ${r.ffnMult ? 'ffn_mult widths (multiples of 256)' : 'any'} | ${r.qwenFeatures ? 'yes' : 'no'} | \`${r.load}\` |`;
  });
  return ['| runtime | what reads the child | attention | FFN | positions | FFN widths | Qwen biases / q-k norms | loads an exported child |', '|---|---|---|---|---|---|---|---|', ...rows].join('\n');
}
