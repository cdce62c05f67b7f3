import { HF_TENSOR_NAMES, readLlamaCore, type ModelFamily } from './family.js';

/** Mistral: Llama's layer with sliding-window attention (`sliding_window` tokens; null or absent: full attention). */
export const mistral: ModelFamily = {
  name: 'mistral',
  architectures: ['MistralForCausalLM'],
  read: (f, source) => {
    const window = f.has('sliding_window') && f.boolean('use_sliding_window', true) ? f.positiveInt('sliding_window') : null;
    return { config: readLlamaCore(f, source, { slidingWindow: window }), architecture: null };
  },
  tensorNames: HF_TENSOR_NAMES,
};
