import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parentArchitecture } from '../src/arch/config.js';
import { parseModelConfig } from '../src/model/config.js';
import { layerBytes, planStages } from '../src/onnx/staged.js';
import { distillMemory, ensureFits, largestStage, layerCandidates, machineMemory, scoreMemory } from '../src/run/memory.js';
import { loadSearchSpace } from '../src/space/expand.js';
import { ALLOCATOR_ENV, wantsAllocatorRelaunch } from '../src/cli/allocator.js';
import { LLAMA_32_1B } from '../bench/shapes.js';
import { modelDir, TINYSTORIES } from './support/fixtures.js';

const ROOT = resolve(import.meta.dirname, '..');
const MiB = 2 ** 20;

describe('memory estimates', () => {
  const config = parseModelConfig('Llama-3.2-1B config.json', LLAMA_32_1B);
  const arch = parentArchitecture(config);
  const E = config.hiddenSize;
  const V = config.vocabSize;

  it('the largest stage at 1B is the embedding table with the first layer, whatever the budget below it', () => {
    const source = { numLayers: arch.length, architecture: arch } as never;
    const firstLayer = layerBytes(config, source)[0];
    expect(largestStage(config, arch, 256 * MiB)).toBe(4 * V * E + firstLayer);
    expect(largestStage(config, arch, 2048 * MiB)).toBe(Math.max(...planStages(config, source, 2048 * MiB).map((s) => s.bytes)));
    expect(largestStage(config, arch, 2048 * MiB)).toBeLessThanOrEqual(2048 * MiB);
  });

  it("score: the candidates' phase grows by one worker each, and with a layer's candidates and the tokens", () => {
    const o = { stageBytes: 256 * MiB, seqLen: 128, calibTokens: 2048, validTokens: 512, candidatesPerLayer: 15 };
    const two = scoreMemory(config, arch, { ...o, workers: 2 });
    expect(two.parts.some((p) => p.what.startsWith('2 workers:'))).toBe(true);
    expect(scoreMemory(config, arch, { ...o, workers: 2, candidatesPerLayer: 16 }).bytes - two.bytes).toBe(2 * 512 * E * 4);
    // Each worker holds its layer's candidates' weights until the layer's pass: the puzzle space's FFN widths dominate.
    const puzzle = layerCandidates(config, loadSearchSpace(join(ROOT, 'search-spaces/puzzle.json'), config));
    expect(puzzle.bytes).toBeGreaterThan(4 * 3 * E * config.intermediateSize * 4);
    expect(scoreMemory(config, arch, { ...o, workers: 2, candidateBytes: puzzle.bytes }).bytes - two.bytes).toBe(2 * puzzle.bytes);
    expect(scoreMemory(config, arch, { ...o, workers: 2, validTokens: 2048 }).bytes).toBeGreaterThan(two.bytes);
    const [three, four] = [3, 4].map((workers) => scoreMemory(config, arch, { ...o, workers }).bytes);
    expect(four - three).toBeCloseTo(three - two.bytes, 0);
    expect(three - two.bytes).toBeGreaterThan(4 * V * E); // each worker keeps the head built
  });

  it('full distillation needs 28 bytes a parameter of the child at least: a 1B child does not fit 24 GB; through adapters it fits 8 GB', () => {
    const o = { seqLen: 128, batch: 16, lora: { rank: 16 }, stageBytes: 256 * MiB };
    const e = distillMemory(config, arch, arch, { ...o, method: 'full' });
    expect(e.bytes).toBeGreaterThan(28 * 1.2e9);
    expect(() => ensureFits('distill', e, 24e9)).toThrow(/distill needs about \d+\.\d GB of memory and this machine has 24\.0 GB; the largest part is the child's training state.*--method lora/);
    const lora = distillMemory(config, arch, arch, { ...o, method: 'lora' });
    expect(lora.bytes).toBeLessThan(8e9);
    // With more evaluation tokens the before/after comparison is the larger phase: the parent's distribution on them counts.
    expect(distillMemory(config, arch, arch, { ...o, method: 'lora', evalTokens: 8192 }).bytes - distillMemory(config, arch, arch, { ...o, method: 'lora', evalTokens: 4096 }).bytes).toBe(4096 * V * 4);
  });

  it('TESSERA_MEMORY_GB sets the memory a command must fit in; nonsense is refused by name', () => {
    expect(machineMemory({ TESSERA_MEMORY_GB: '3.5' })).toBe(3.5e9);
    expect(() => machineMemory({ TESSERA_MEMORY_GB: 'lots' })).toThrow(/TESSERA_MEMORY_GB: "lots" is not a positive number/);
    expect(machineMemory({})).toBeGreaterThan(0);
  });

  it('a command that would not fit is refused before it starts, with the estimate and the option that helps', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/tessera.js'), 'perplexity', modelDir('stories260K'), '--data', TINYSTORIES, '--tokens', '512'], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, TESSERA_MEMORY_GB: '0.01' },
    });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(/^tessera: perplexity needs about [\d.]+ GB of memory and this machine has 0\.0 GB; .*Options that need less: --stage-mb/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('allocator settings', () => {
  it('a process relaunches itself once with them, and not when they are set', () => {
    expect(wantsAllocatorRelaunch({ ...ALLOCATOR_ENV })).toBe(false);
    expect(wantsAllocatorRelaunch({ TESSERA_NO_RELAUNCH: '1' })).toBe(false);
    expect(wantsAllocatorRelaunch({ TESSERA_LAUNCHER_PID: '123' })).toBe(false);
    expect(wantsAllocatorRelaunch({})).toBe(process.platform === 'linux');
  });
});

describe('progress follows work, not counts', () => {
  it("an early layer's candidates weigh more than a late one's (a longer pass through later layers): about 2.8× at 1B", async () => {
    const { candidateWork } = await import('../src/bld/score.js');
    const config = parseModelConfig('Llama-3.2-1B config.json', LLAMA_32_1B);
    const arch = parentArchitecture(config);
    const tokens = { calibration: 2048, validation: 512 };
    const ffn = (layer: number) => ({ layer, subBlock: 'ffn' as const, variant: { kind: 'noop' as const } });
    const ratio = candidateWork(config, arch, ffn(0), tokens, false) / candidateWork(config, arch, ffn(15), tokens, false);
    // By hand: a layer holds 60.8M parameters and the head 262.7M: (2048·60.8 + 512·(15·60.8 + 262.7)) / (2048·60.8 + 512·262.7).
    const L = 2 * 2048 * 2048 + 2 * 512 * 2048 + 3 * 2048 * 8192 + 2 * 2048;
    const head = 128256 * 2048;
    expect(ratio).toBeCloseTo((2048 * L + 512 * (15 * L + head)) / (2048 * L + 512 * head), 9);
    expect(ratio).toBeGreaterThan(2.5);
    // A local-only pass has no global scores: every layer the same.
    expect(candidateWork(config, arch, ffn(0), tokens, true)).toBe(candidateWork(config, arch, ffn(15), tokens, true));
  });

  it('the ETA counts only the work done since this run began (a resumed run) at the rate it has gone', async () => {
    const { remainingSeconds } = await import('../src/util/reporter.js');
    // Resumed at 50%, 10% more in 10 s: 40% left at 1% a second.
    expect(remainingSeconds(10, 0.5, 0.6)).toBeCloseTo(40, 9);
    expect(remainingSeconds(10, 0.5, 0.5)).toBeNaN();
  });
});
