/**
 * The execution providers Tessera runs graphs on: onnxruntime's CPU kernels, or its WebGPU provider (compiled
 * into onnxruntime-node's Linux build; it reaches the GPU through Vulkan), which runs what it has kernels for and
 * leaves the rest to the CPU. (Apart from runtime.ts so that reading a profile does not load onnxruntime.)
 */
export type ExecutionProvider = 'cpu' | 'webgpu';
export const EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ['cpu', 'webgpu'];
