import { HF_TENSOR_NAMES, readLlamaCore, refuseLayerwiseWindow, type ModelFamily } from './family.js';

/** Qwen3 (dense): Llama's layer with queries and keys RMS-normalised per head before RoPE; head_dim may differ from hidden / heads. */
export const qwen3: ModelFamily = {
  name: 'qwen3',
  architectures: ['Qwen3ForCausalLM'],
  read: (f, source) => {
    refuseLayerwiseWindow(f);
    return { config: readLlamaCore(f, source, { slidingWindow: null, qkNorm: true }), architecture: null };
  },
  tensorNames: HF_TENSOR_NAMES,
};
