import { HF_TENSOR_NAMES, readLlamaCore, type ModelFamily } from './family.js';

/** Llama 1–3.x (and SmolLM, TinyLlama, …): full causal attention; llama3/linear RoPE scaling; tied or untied heads. */
export const llama: ModelFamily = {
  name: 'llama',
  architectures: ['LlamaForCausalLM'],
  read: (f, source) => ({ config: readLlamaCore(f, source, { slidingWindow: null }), architecture: null }),
  tensorNames: HF_TENSOR_NAMES,
};
