import { describe, expect, it } from 'vitest';
import { cachedKvHeadsOf } from '../src/arch/variants/registry.js';
import { compareModels } from '../src/hardware/measure.js';
import { argmax } from '../src/lm/generate.js';
import { openCheckpoint } from '../src/model/checkpoint.js';
import { cpuRuntime, noAdapter, webgpuRuntime, type Runtime } from '../src/onnx/runtime.js';
import { StagedDecoder } from '../src/onnx/staged.js';
import { TesseraError } from '../src/util/errors.js';
import { modelDir } from './support/fixtures.js';

describe('execution providers', () => {
  it('keeps the outputs a next call takes back on the device only where the runtime has one', () => {
    const kept = ['present_key.0', 'present_value.0'];
    expect(webgpuRuntime(1).sessionOptions({ kept })).toMatchObject({ executionProviders: ['webgpu'], preferredOutputLocation: { 'present_key.0': 'gpu-buffer', 'present_value.0': 'gpu-buffer' } });
    expect(webgpuRuntime(1).sessionOptions()).not.toHaveProperty('preferredOutputLocation');
    expect(cpuRuntime(1).sessionOptions({ kept })).not.toHaveProperty('preferredOutputLocation');
    expect(cpuRuntime(1).sessionOptions({ kept }).executionProviders).toEqual(['cpu']);
  });

  it('says in one line what WebGPU needs when onnxruntime finds no adapter', () => {
    const message = noAdapter('Error: /onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 ... Failed to get a WebGPU adapter: No supported adapters\n    at new OnnxruntimeSessionHandler');
    expect(message).toBe("provider webgpu: onnxruntime found no GPU adapter (No supported adapters); its WebGPU provider reaches the GPU through Vulkan: install the Vulkan loader (libvulkan1) and the GPU's Vulkan driver, or use --provider cpu");
  });

  /**
   * On a machine with a Vulkan device (a GPU, or Mesa's lavapipe on a CPU) WebGPU must compute what the CPU does,
   * K/V caches kept on the device across decode steps and stages; on one without, it must refuse in that one line.
   */
  it('runs a model on WebGPU as on the CPU, K/V kept on the device, or says it cannot', async () => {
    const gpu = webgpuRuntime(1, 0.4 * 2 ** 20);
    const available = await gpu.check().then(() => true, (e: unknown) => {
      expect(e).toBeInstanceOf(TesseraError);
      expect((e as Error).message).toMatch(/^provider webgpu: onnxruntime found no GPU adapter \(.+\); .* or use --provider cpu$/);
      return false;
    });
    if (!available) return;
    const ck = openCheckpoint(modelDir('stories260K'));
    const greedy = async (runtime: Runtime): Promise<Float32Array[]> => {
      const decoder = await StagedDecoder.create(ck.config, ck.source, { kvCache: true, logits: 'last', fusedAttention: true, kvBuffer: true }, runtime);
      const [B, P, steps, V] = [2, 12, 5, ck.config.vocabSize];
      const buffers = await decoder.kvBuffers(B, P + steps, cachedKvHeadsOf(ck.config, ck.architecture));
      const logits: Float32Array[] = [];
      let r = await decoder.run({ ids: Int32Array.from({ length: B * P }, (_, i) => (i * 7919) % V), batch: B, seq: P }, buffers);
      for (let t = 0; t < steps; t++) {
        logits.push(r.logits!.data.slice());
        const next = Int32Array.from({ length: B }, (_, b) => argmax(r.logits!.data.subarray(b * V, (b + 1) * V)));
        r = await decoder.run({ ids: next, batch: B, seq: 1 }, buffers);
      }
      expect(buffers.inPlace).toBe(runtime === gpu ? false : true);
      await buffers.dispose();
      await decoder.release();
      return logits;
    };
    const [cpu, webgpu] = [await greedy(cpuRuntime(1, 0.4 * 2 ** 20)), await greedy(gpu)];
    for (const [t, step] of cpu.entries()) for (const [i, v] of step.entries()) expect(Math.abs(v - webgpu[t][i])).toBeLessThan(1e-4);
    // And the timing protocol runs there (its K/V buffers on the device too).
    const m = { config: ck.config, weights: ck.source, arch: ck.architecture };
    const c = await compareModels([m, m], { name: 's', prefillTokens: 8, generatedTokens: 3, batch: 2 }, { runtime: gpu, warmup: 1, minRounds: 2, maxRounds: 2, precision: 1, maxSeconds: Infinity });
    expect(c.medians[0].decodeSeconds).toBeGreaterThan(0);
  }, 120_000);
});
