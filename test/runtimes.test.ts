import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LLAMA_32_1B } from '../bench/shapes.js';
import type { BlockConfig } from '../src/arch/variant.js';
import { parseModelConfig } from '../src/model/config.js';
import { loadSearchSpace } from '../src/space/expand.js';
import { architectureViolations, blockViolation, restrictSpace, RUNTIMES, runtimeTable, runtimeTarget } from '../src/targets/runtimes.js';
import { configOf } from './support/fixtures.js';

const ROOT = resolve(import.meta.dirname, '..');
const config = parseModelConfig('Llama-3.2-1B config.json', LLAMA_32_1B);
const gqa = { kind: 'gqa', kvHeads: 8 } as const;
const swiglu = (intermediate: number) => ({ kind: 'swiglu', intermediate }) as const;
const block = (attention: BlockConfig['attention'], ffn: BlockConfig['ffn']): BlockConfig => ({ attention, ffn });
const noop = { kind: 'noop' } as const;
const linear = { kind: 'linear' } as const;

describe('runtime targets', () => {
  it("llama.cpp: layer 0's attention, the last layer's FFN, no linear FFN, a no-op FFN only beside a no-op attention", () => {
    const t = runtimeTarget('llama.cpp');
    const at = (b: BlockConfig, layer: number) => blockViolation(config, t, b, layer, 16);
    expect(at(block(gqa, swiglu(8192)), 0)).toBeNull();
    expect(at(block(noop, swiglu(8192)), 0)).toMatch(/needs layer 0's attention/);
    expect(at(block(noop, swiglu(8192)), 1)).toBeNull();
    expect(at(block(linear, swiglu(8192)), 0)).toBeNull();
    expect(at(block(gqa, noop), 15)).toMatch(/needs the last layer's FFN/);
    expect(at(block(gqa, noop), 7)).toMatch(/drops the attention's output where the FFN is a no-op/);
    expect(at(block(noop, noop), 7)).toBeNull();
    expect(at(block(gqa, linear), 7)).toMatch(/a linear FFN is not computed by llama\.cpp/);
    // GGUF states each layer's width: any width.
    expect(at(block(gqa, swiglu(1000)), 3)).toBeNull();
  });

  it('DeciLM readers need ffn_mult widths (multiples of 256 from the hidden size); vLLM and SGLang compute no linear replacement', () => {
    for (const name of ['hf', 'vllm', 'sglang', 'trt-llm', 'mlx']) {
      const t = runtimeTarget(name);
      expect(blockViolation(config, t, block(gqa, swiglu(8192)), 3, 16), name).toBeNull();
      expect(blockViolation(config, t, block(gqa, swiglu(4096)), 3, 16), name).toBeNull();
      expect(blockViolation(config, t, block(gqa, swiglu(4000)), 3, 16), name).toMatch(/FFN width 4000 is not a DeciLM ffn_mult width/);
    }
    for (const name of ['vllm', 'sglang']) {
      expect(blockViolation(config, runtimeTarget(name), block(linear, swiglu(8192)), 3, 16)).toMatch(/linear attention is not computed/);
      expect(blockViolation(config, runtimeTarget(name), block(gqa, linear), 3, 16)).toMatch(/a linear FFN is not computed/);
    }
    expect(blockViolation(config, runtimeTarget('vllm'), block(noop, swiglu(8192)), 0, 16)).toMatch(/needs layer 0's attention/);
    for (const name of ['onnx', 'trt-llm', 'mlx', 'hf']) expect(blockViolation(config, runtimeTarget(name), block(linear, linear), 0, 16), name).toBeNull();
  });

  it("Qwen features run only in the ONNX graph, Mistral's sliding window not in llama.cpp; every architecture runs in ONNX", () => {
    const mistral = { ...config, slidingWindow: 4096 };
    expect(architectureViolations(mistral, runtimeTarget('llama.cpp'), [block(gqa, swiglu(8192))])).toEqual([expect.stringMatching(/llama\.cpp has no sliding-window attention \(Mistral's 4096 tokens\)/)]);
    expect(architectureViolations(mistral, runtimeTarget('vllm'), [block(gqa, swiglu(8192))])).toEqual([]);
    const qwen = { ...configOf({ hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 172, vocab: 100, tied: true }), qkvBias: true };
    expect(architectureViolations(qwen, runtimeTarget('llama.cpp'), [block(gqa, swiglu(172))])).toEqual([expect.stringMatching(/cannot state q\/k\/v biases \(Qwen2\): use --runtime onnx/)]);
    expect(architectureViolations(qwen, runtimeTarget('onnx'), [block(noop, linear), block(linear, noop)])).toEqual([]);
  });

  it('restricting the puzzle space keeps exactly the blocks a runtime runs, the parent among them', () => {
    const space = loadSearchSpace(join(ROOT, 'search-spaces/puzzle.json'), config);
    for (const t of RUNTIMES) {
      const restricted = restrictSpace(config, space, t);
      space.layers.forEach((l, i) => {
        const kept = new Set(restricted.layers[i].blocks);
        for (const b of l.blocks) expect(kept.has(b), `${t.name} layer ${i} ${JSON.stringify(b)}`).toBe(blockViolation(config, t, b, i, 16) === null);
        expect(restricted.layers[i].blocks).toContainEqual(block(gqa, swiglu(8192)));
        // Sub-block candidates: those of the kept blocks only.
        for (const a of restricted.layers[i].attention) expect(restricted.layers[i].blocks.some((b) => b.attention === a)).toBe(true);
      });
    }
    expect(restrictSpace(config, space, runtimeTarget('vllm')).layers[0].attention.every((a) => a.kind === 'gqa')).toBe(true);
  });

  it('the README holds the table `tessera runtimes` prints; an unknown runtime is refused by name', () => {
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain(runtimeTable());
    const cli = spawnSync(process.execPath, [join(ROOT, 'bin/tessera.js'), 'runtimes'], { encoding: 'utf8' });
    expect(cli.stdout.trim()).toBe(runtimeTable());
    const bad = spawnSync(process.execPath, [join(ROOT, 'bin/tessera.js'), 'solve', '--run', ROOT, '--runtime', 'tensorflow'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--runtime <name>' argument 'tensorflow' is invalid\. Allowed choices are onnx, hf, vllm, sglang, trt-llm, llama\.cpp, mlx/);
    expect(() => runtimeTarget('tensorflow')).toThrow(/option --runtime: "tensorflow" is not a runtime; expected one of onnx, hf, vllm/);
  });
});
