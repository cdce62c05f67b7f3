import { HF_TENSOR_NAMES, readLlamaCore, refuseLayerwiseWindow, type ModelFamily } from './family.js';

/** Qwen2 and Qwen2.5: Llama's layer with biases on the q, k and v projections (none on o_proj). */
export const qwen2: ModelFamily = {
  name: 'qwen2',
  architectures: ['Qwen2ForCausalLM'],
  read: (f, source) => {
    refuseLayerwiseWindow(f);
    return { config: readLlamaCore(f, source, { slidingWindow: null, qkvBias: true }), architecture: null };
  },
  tensorNames: HF_TENSOR_NAMES,
};
