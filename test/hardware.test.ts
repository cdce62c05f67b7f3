import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parentArchitecture } from '../src/arch/config.js';
import { modelParams } from '../src/arch/params.js';
import { decodeSteps, measuredCostModel, rooflineCostModel } from '../src/hardware/cost-model.js';
import { loadHardwareProfile, parseHardwareProfile } from '../src/hardware/load.js';
import { architectureCost } from '../src/hardware/model-cost.js';
import { recalibratedProfile } from '../src/hardware/recalibrate.js';
import { wholeSeconds } from '../src/hardware/power-law.js';
import { attentionKernels, ffnKernels, kernelSeconds } from '../src/hardware/roofline.js';
import type { HardwareProfile } from '../src/hardware/types.js';
import { preciseEnough } from '../src/hardware/interval.js';
import { blockTime, compareModels, DEFAULT_PROTOCOL, FASTEST_OF_SECONDS, fastestRun, measureSubBlocks, runsPerBuild, TIMED_RUNS, type ExternalModel } from '../src/hardware/measure.js';
import { timingWeights } from '../src/model/random.js';
import { Rng } from '../src/util/rng.js';
import { cpuRuntime } from '../src/onnx/runtime.js';
import { configOf } from './support/fixtures.js';

const PROFILES = resolve(import.meta.dirname, '../hardware-profiles');

/** A device with round numbers, so every roofline time can be worked out by hand. */
function toyProfile(scenarios: { name: string; prefillTokens: number; generatedTokens: number; batch: number }[], overheads = { kernelOverheadUs: 0, stepOverheadUs: 0 }): HardwareProfile {
  return parseHardwareProfile('toy.json', {
    device: { name: 'toy', peakTflops: { bf16: 100 }, memoryBandwidthGBs: 1000, memoryCapacityGB: 80, computeEfficiency: 1, bandwidthEfficiency: 1, ...overheads },
    workload: { weightDtype: 'bf16', activationDtype: 'bf16', kvCacheDtype: 'bf16', scenarios },
  });
}

// Hidden 1024, 8 heads of 128, 8 KV heads, FFN 4096, vocab 32000.
const config = configOf({ hidden: 1024, layers: 2, heads: 8, kvHeads: 8, intermediate: 4096, vocab: 32000 });

describe('shipped hardware profiles', () => {
  const files = readdirSync(PROFILES).filter((f) => f.endsWith('.json') && !f.includes('schema'));

  it('are the six the project promises, valid against the schema', () => {
    expect(files.sort()).toEqual(['a100-80gb.json', 'cpu-local.json', 'h100-sxm.json', 'h200.json', 'l40s.json', 'rtx-4090.json']);
    const ajv = new Ajv2020.default({ allErrors: true });
    const validate = ajv.compile(JSON.parse(readFileSync(join(PROFILES, 'hardware-profile.schema.json'), 'utf8')));
    for (const f of files) expect(validate(JSON.parse(readFileSync(join(PROFILES, f), 'utf8'))), `${f}: ${ajv.errorsText(validate.errors)}`).toBe(true);
  });

  it('cite a source for every device number', () => {
    for (const f of files) {
      const raw = JSON.parse(readFileSync(join(PROFILES, f), 'utf8'));
      const paths = [
        ...Object.keys(raw.device.peakTflops).map((k) => `peakTflops.${k}`),
        ...Object.keys(raw.device).filter((k) => typeof raw.device[k] === 'number'),
      ];
      for (const p of paths) expect(raw.sources[p], `${f}: sources["${p}"]`).toMatch(/^.{10,}$/);
      loadHardwareProfile(join(PROFILES, f));
    }
  });

  it('read spec-sheet units into SI units (H100: 989.4 TFLOP/s bf16, 3.35 TB/s, 80 GB)', () => {
    const p = loadHardwareProfile(join(PROFILES, 'h100-sxm.json'));
    expect(p.device.peakFlops.bf16).toBeCloseTo(989.4e12, -6);
    expect(p.device.memoryBandwidth).toBe(3.35e12);
    expect(p.device.memoryCapacity).toBe(80e9);
    expect(p.device.kernelOverhead).toBeCloseTo(5e-6, 12);
  });
});

describe('bad hardware profiles name the file and field', () => {
  const base = { name: 'd', peakTflops: { bf16: 1 }, memoryBandwidthGBs: 1, memoryCapacityGB: 1, computeEfficiency: 0.5, bandwidthEfficiency: 0.5 };
  const workload = { weightDtype: 'bf16', activationDtype: 'bf16', kvCacheDtype: 'bf16', scenarios: [{ name: 's', prefillTokens: 1, generatedTokens: 1, batch: 1 }] };
  it('rejects out-of-range numbers, unknown dtypes and duplicate scenarios', () => {
    expect(() => parseHardwareProfile('p.json', { device: { ...base, computeEfficiency: 1.5 }, workload })).toThrow(/p\.json: field "device\.computeEfficiency" is 1\.5; expected a fraction in \(0, 1\]/);
    expect(() => parseHardwareProfile('p.json', { device: { ...base, peakTflops: { bf17: 1 } }, workload })).toThrow(/p\.json: field "device\.peakTflops\.bf17" is not a dtype/);
    expect(() => parseHardwareProfile('p.json', { device: base, workload: { ...workload, kvCacheDtype: 'fp4' } })).toThrow(/field "workload\.kvCacheDtype" is "fp4"; expected one of fp32/);
    expect(() => parseHardwareProfile('p.json', { device: base, workload: { ...workload, scenarios: [workload.scenarios[0], workload.scenarios[0]] } })).toThrow(/names "s" twice/);
    expect(() => parseHardwareProfile('p.json', { device: base, workload: { ...workload, scenarios: [{ name: 's', prefillTokens: 0, generatedTokens: 1, batch: 1 }] } })).toThrow(/field "workload\.scenarios\[0\]\.prefillTokens" is 0; expected a positive integer/);
  });

  it('refuses unknown fields (a misspelt one would fall back silently) and a description that is not text', () => {
    expect(() => parseHardwareProfile('p.json', { device: base, workload, sourcess: {} })).toThrow(/p\.json: unknown field "sourcess"; expected one of/);
    expect(() => parseHardwareProfile('p.json', { device: { ...base, memoryBandwidthGB: 1 }, workload })).toThrow(/p\.json: unknown field "device\.memoryBandwidthGB"/);
    expect(() => parseHardwareProfile('p.json', { device: base, workload: { ...workload, scenarios: [{ ...workload.scenarios[0], batchSize: 8 }] } })).toThrow(/unknown field "workload\.scenarios\[0\]\.batchSize"/);
    expect(() => parseHardwareProfile('p.json', { device: base, workload, description: 5 })).toThrow(/p\.json: field "description" is 5; expected a string/);
  });

  it('refuses a profile whose compute dtype has no peak', () => {
    const p = parseHardwareProfile('p.json', { device: base, workload: { ...workload, activationDtype: 'fp32' } });
    expect(() => rooflineCostModel(config, p)).toThrow(/p\.json: field "device\.peakTflops\.fp32" is missing/);
  });
});

describe('roofline costs, checked by hand', () => {
  const profile = toyProfile([{ name: 'one', prefillTokens: 1024, generatedTokens: 3, batch: 1 }]);
  const { device, workload } = profile;
  const seconds = (ks: { flops: number; bytes: number }[]) => ks.reduce((t, k) => t + kernelSeconds(k, device, workload), 0);

  it('a one-token SwiGLU step is bound by reading its weights', () => {
    // norm: 6,144 B; gate+up: 1024·8192·2 B weights + (1024+8192)·2 B activations; silu·up: 3·4096·2 B; down: 4096·1024·2 + (4096+1024)·2 B.
    const bytes = 6144 + (16_777_216 + 18_432) + 24_576 + (8_388_608 + 10_240);
    const t = seconds(ffnKernels(config, { kind: 'swiglu', intermediate: 4096 }, { batch: 1, tokens: 1, pastTokens: 0 }, workload));
    expect(t).toBeCloseTo(bytes / 1e12, 15);
  });

  it('a 4096-token SwiGLU prefill is bound by compute', () => {
    // 2·4096·1024·8192 + 2·4096·4096·1024 FLOPs of matmuls at 100 TFLOP/s; norm and silu·up stay memory-bound.
    const matmuls = (2 * 4096 * 1024 * 8192 + 2 * 4096 * 4096 * 1024) / 1e14;
    const norm = (2 * 4096 * 1024 * 2 + 1024 * 2) / 1e12;
    const act = (3 * 4096 * 4096 * 2) / 1e12;
    const t = seconds(ffnKernels(config, { kind: 'swiglu', intermediate: 4096 }, { batch: 1, tokens: 4096, pastTokens: 0 }, workload));
    expect(t).toBeCloseTo(matmuls + norm + act, 12);
  });

  it('decode attention reads the whole K/V cache: fewer KV heads read less', () => {
    // Batch 8 at 1023 cached positions: the core kernel moves 8·1024·2·K·128·2 B of cache plus q and its output.
    const core = (K: number) => attentionKernels(config, { kind: 'gqa', kvHeads: K }, { batch: 8, tokens: 1, pastTokens: 1023 }, workload)[3];
    expect(core(8)).toEqual({ flops: 4 * 8 * 8 * 128 * 1024, bytes: 8 * 1024 * 2 * 8 * 128 * 2 + 2 * 8 * 1024 * 2 });
    expect(core(2).bytes).toBe(8 * 1024 * 2 * 2 * 128 * 2 + 2 * 8 * 1024 * 2);
  });

  it('prefill attends causally: query i sees i keys', () => {
    const k = attentionKernels(config, { kind: 'gqa', kvHeads: 8 }, { batch: 1, tokens: 4, pastTokens: 0 }, workload)[3];
    expect(k.flops).toBe(4 * 8 * 128 * (1 + 2 + 3 + 4));
  });

  it('a scenario is one prefill and generated − 1 decode steps, each seeing everything before it', () => {
    const s = profile.workload.scenarios[0];
    expect(decodeSteps(s)).toEqual([{ batch: 1, tokens: 1, pastTokens: 1024 }, { batch: 1, tokens: 1, pastTokens: 1025 }]);
    const v = { kind: 'swiglu', intermediate: 4096 } as const;
    const costs = rooflineCostModel(config, profile);
    const step = (past: number) => seconds(ffnKernels(config, v, { batch: 1, tokens: 1, pastTokens: past }, workload));
    expect(costs.ffn(v, s).decodeSeconds).toBeCloseTo(step(1024) + step(1025), 15);
    expect(costs.ffn(v, s).prefillSeconds).toBeCloseTo(seconds(ffnKernels(config, v, { batch: 1, tokens: 1024, pastTokens: 0 }, workload)), 15);
  });

  it('whole-model totals add the layers, the rest and per-step overheads; throughput = batch × generated / time', () => {
    const withOverheads = toyProfile([{ name: 'b4', prefillTokens: 16, generatedTokens: 5, batch: 4 }], { kernelOverheadUs: 2, stepOverheadUs: 30 });
    const costs = rooflineCostModel(config, withOverheads);
    const s = withOverheads.workload.scenarios[0];
    const [c] = architectureCost(config, parentArchitecture(config), withOverheads, costs);
    const layer = (f: 'prefillSeconds' | 'decodeSeconds') => costs.attention(parentArchitecture(config)[0].attention, s)[f] + costs.ffn(parentArchitecture(config)[0].ffn, s)[f];
    expect(c.prefillSeconds).toBeCloseTo(2 * layer('prefillSeconds') + costs.rest(s).prefillSeconds, 15);
    expect(c.decodeSeconds).toBeCloseTo(2 * layer('decodeSeconds') + costs.rest(s).decodeSeconds, 15);
    expect(c.tokensPerSecond).toBeCloseTo((4 * 5) / (c.prefillSeconds + c.decodeSeconds), 9);
    // 30 µs per forward call: 1 prefill + 4 decode steps; 3 rest kernels × 2 µs per call.
    const bare = rooflineCostModel(config, toyProfile([s])).rest(s);
    expect(costs.rest(s).prefillSeconds - bare.prefillSeconds).toBeCloseTo(30e-6 + 3 * 2e-6, 12);
    expect(costs.rest(s).decodeSeconds - bare.decodeSeconds).toBeCloseTo(4 * (30e-6 + 3 * 2e-6), 12);
  });

  it('memory: Llama-3.1-8B in bf16 holds 16.06 GB of weights and 128 KiB of K/V per cached token (prompt + generated − 1)', () => {
    const llama8b = configOf({ hidden: 4096, layers: 32, heads: 32, kvHeads: 8, intermediate: 14336, vocab: 128256, tied: false });
    expect(modelParams(llama8b, parentArchitecture(llama8b))).toBe(8_030_261_248);
    const p = toyProfile([{ name: 'ctx8k', prefillTokens: 8000, generatedTokens: 193, batch: 2 }]);
    const [c] = architectureCost(llama8b, parentArchitecture(llama8b), p, rooflineCostModel(llama8b, p));
    expect(c.weightBytes).toBe(8_030_261_248 * 2);
    expect(c.kvCacheBytes).toBe(2 * 8192 * 131_072);
    expect(c.memoryBytes).toBe(c.weightBytes + c.kvCacheBytes);
    expect(c.fitsInMemory).toBe(true);
  });
});

describe('measured cost model', () => {
  /** A profile's JSON: a toy device, one scenario "s", and `measured`. */
  const profileJson = (measured: Record<string, unknown>) => ({
    device: { name: 'cpu', peakTflops: { fp32: 1 }, memoryBandwidthGBs: 1, memoryCapacityGB: 1, computeEfficiency: 1, bandwidthEfficiency: 1 },
    workload: { weightDtype: 'fp32', activationDtype: 'fp32', kvCacheDtype: 'fp32', scenarios: [{ name: 's', prefillTokens: 4, generatedTokens: 2, batch: 1 }] },
    measured,
  });
  const measured = (model: Record<string, unknown>, extra: Record<string, unknown> = {}) => parseHardwareProfile('m.json', profileJson(
    { model, threads: 1, repeats: 3, scenarios: { s: { 'attn-gqa8': { prefillSeconds: 1, decodeSeconds: 2 }, 'ffn-noop': { prefillSeconds: 0, decodeSeconds: 0 }, rest: { prefillSeconds: 0.5, decodeSeconds: 0.25 } } }, ...extra },
  ));
  const shape = { dir: 'x', hiddenSize: 1024, numHeads: 8, headDim: 128, vocabSize: 32000 };

  it('returns the measured times', () => {
    const c = measuredCostModel(config, measured(shape));
    const s = measured(shape).workload.scenarios[0];
    expect(c.attention({ kind: 'gqa', kvHeads: 8 }, s)).toEqual({ prefillSeconds: 1, decodeSeconds: 2 });
    expect(c.rest(s)).toEqual({ prefillSeconds: 0.5, decodeSeconds: 0.25 });
  });

  it('prices whole models by the power law a scenario was calibrated with, and inverts it for budgets', () => {
    const line = { intercept: 0, slope: 1 };
    const withLaw = (power: unknown) => measured(shape, { calibration: { s: { prefill: line, decode: line, points: [], power } } });
    const profile = withLaw({ coefficient: 0.8, exponent: 0.9 });
    const c = measuredCostModel(config, profile);
    const s = profile.workload.scenarios[0];
    // Two layers of attention and no FFN: blocks and rest sum to 2.5 s of prefill and 4.25 s of decode.
    const arch = parentArchitecture(config).map((b) => ({ ...b, ffn: { kind: 'noop' } as const }));
    const [cost] = architectureCost(config, arch, profile, c);
    expect(cost.totalSeconds).toBeCloseTo(0.8 * 6.75 ** 0.9, 12);
    expect(cost.decodeSeconds / cost.prefillSeconds).toBeCloseTo(4.25 / 2.5, 12);
    expect(c.sumWithin(cost.totalSeconds, s)).toBeCloseTo(6.75, 12);
    // Without a law, times add up as they are.
    const [plain] = architectureCost(config, arch, measured(shape), measuredCostModel(config, measured(shape)));
    expect(plain.totalSeconds).toBeCloseTo(6.75, 12);
    expect(() => withLaw({ coefficient: 0.8, exponent: -1 })).toThrow(/m\.json: field "measured\.calibration\.s\.power" is .*expected \{ coefficient, exponent \}, both finite and > 0, and optionally a finite offset/);
  });

  it('recalibrate: refits a profile from the timings it keeps, everything else as it was; names what an old profile lacks', () => {
    const t = (prefillSeconds: number, decodeSeconds: number) => ({ prefillSeconds, decodeSeconds });
    const raw = { 'attn-gqa8': t(1e-3, 2e-3), 'attn-noop': t(0, 0), 'ffn-noop': t(0, 0), rest: t(5e-4, 2.5e-4) };
    // Whole models of 0–8 attention layers following 0.45 × Σ^0.8 − 0.6 ms, which only the law with an offset fits.
    const truth = { coefficient: 0.45, exponent: 0.8, offset: -6e-4 };
    const points = [0, 1, 2, 3, 4, 5, 6, 8].map((n) => {
      const predicted = t(5e-4 + n * 1e-3, 2.5e-4 + n * 2e-3);
      const total = wholeSeconds(truth, predicted.prefillSeconds + predicted.decodeSeconds);
      const share = total / (predicted.prefillSeconds + predicted.decodeSeconds);
      return { predicted, measured: t(share * predicted.prefillSeconds, share * predicted.decodeSeconds), counts: { rest: 1, 'attn-gqa8': n, 'attn-noop': 8 - n, 'ffn-noop': 8 } };
    });
    const line = { intercept: 0, slope: 1 };
    const stale = { s: { prefill: line, decode: line, points, refinement: { lambda: null, error: 0.2 }, raw } };
    const json = { name: 'm', description: 'kept', ...profileJson({ model: shape, threads: 2, repeats: 3, scenarios: { s: { ...raw, rest: t(1, 1) } }, calibration: stale }) };
    const { profile, lines } = recalibratedProfile('m.json', json);
    expect(lines).toEqual([expect.stringMatching(/^s: 6 of 8 whole models \(those between the smallest and the largest, each left out in turn\) predicted within 0\.0% by a power law of the sum of blocks with an offset$/)]);
    const p = parseHardwareProfile('m.json', profile);
    const c = p.measured!.calibration!.s;
    expect(c.power!.exponent).toBeCloseTo(0.8, 5);
    expect(c.power!.offset! / truth.offset).toBeCloseTo(1, 3);
    expect(p.measured!.scenarios.s).toEqual(raw);
    expect(c.raw).toEqual(raw);
    expect({ ...profile, measured: undefined }).toEqual({ ...json, measured: undefined });
    expect((profile.measured as Record<string, unknown>).threads).toBe(2);
    // Once refitted, refitting again changes nothing.
    expect(recalibratedProfile('m.json', profile).profile).toEqual(profile);
    const without = (drop: (c: Record<string, unknown>) => Record<string, unknown>) => ({ ...json, measured: { ...json.measured, calibration: { s: drop({ ...stale.s }) } } });
    expect(() => recalibratedProfile('m.json', without(({ raw: _, ...c }) => c))).toThrow(/^m\.json: field "measured\.calibration\.s\.raw" is missing; measured before profiles kept their timings/);
    expect(() => recalibratedProfile('m.json', without((c) => ({ ...c, points: points.map(({ counts: _, ...q }) => q) })))).toThrow(/field "measured\.calibration\.s\.points\[0\]\.counts" is missing/);
    expect(() => recalibratedProfile('m.json', without((c) => ({ ...c, points: [{ ...points[0], counts: { 'ffn-swiglu8': 1 } }] })))).toThrow(/field "measured\.calibration\.s\.points\[0\]\.counts" uses "ffn-swiglu8", which "measured\.calibration\.s\.raw" has no time for/);
    expect(() => recalibratedProfile('m.json', { ...json, measured: undefined })).toThrow(/^m\.json: has no "measured" section/);
  });

  it('refuses another model\'s measurements and unmeasured variants', () => {
    expect(() => measuredCostModel(config, measured({ ...shape, hiddenSize: 512 }))).toThrow(/m\.json: measured for a model of hidden 512/);
    const s = measured(shape).workload.scenarios[0];
    expect(() => measuredCostModel(config, measured(shape)).ffn({ kind: 'linear' }, s)).toThrow(/m\.json: no measured time for "ffn-linear" in scenario "s"/);
  });

  it('records the execution provider measured on (absent: cpu) and refuses one Tessera does not run', () => {
    expect(measured(shape).measured?.provider).toBeUndefined();
    expect(measured(shape, { provider: 'webgpu' }).measured?.provider).toBe('webgpu');
    expect(() => measured(shape, { provider: 'cuda' })).toThrow(/m\.json: field "measured\.provider" .*cpu or webgpu/);
  });
});

describe('sub-block times from rounds of stacks', () => {
  const t = (prefillSeconds: number, decodeSeconds: number) => ({ prefillSeconds, decodeSeconds });

  it('takes the median over rounds of the stack less the same round\'s empty stack, per copy', () => {
    // Round 2 ran slow for both stacks alike (drift); round 3's stack alone was an outlier.
    const empty = [t(1, 2), t(3, 6), t(1, 2)];
    const stack = [t(9, 18), t(11, 22), t(41, 82)];
    expect(blockTime(stack, empty, 8)).toEqual(t(1, 2));
  });

  it('never prices a block below zero, and refuses rounds that do not pair', () => {
    expect(blockTime([t(1, 1)], [t(2, 0.5)], 4)).toEqual(t(0, 0.125));
    expect(() => blockTime([t(1, 1)], [], 4)).toThrow(RangeError);
  });
});

describe('the fastest of a build\'s runs', () => {
  it('takes the least prefill, and decode step by step: a stall in one run\'s step costs nothing where another run took that step unstalled', () => {
    const runs = [
      { prefillSeconds: 3, decodeSeconds: 7, decodeSteps: [1, 5, 1] },
      { prefillSeconds: 2, decodeSeconds: 9, decodeSteps: [4, 1, 4] },
      { prefillSeconds: 5, decodeSeconds: 8, decodeSteps: [2, 2, 4] },
    ];
    // Brute force: every step's least time, added up.
    expect(fastestRun(runs)).toEqual({ prefillSeconds: 2, decodeSeconds: 1 + 1 + 1 });
  });

  it('falls back to the least decode where runs do not say their steps alike, and refuses no runs', () => {
    expect(fastestRun([{ prefillSeconds: 1, decodeSeconds: 7, decodeSteps: [3, 4] }, { prefillSeconds: 1, decodeSeconds: 6 }])).toEqual({ prefillSeconds: 1, decodeSeconds: 6 });
    expect(fastestRun([{ prefillSeconds: 1, decodeSeconds: 7, decodeSteps: [3, 4] }, { prefillSeconds: 1, decodeSeconds: 6, decodeSteps: [6] }])).toEqual({ prefillSeconds: 1, decodeSeconds: 6 });
    expect(() => fastestRun([])).toThrow(RangeError);
  });
});

describe('the timing protocol', () => {
  const scenario = { name: 'single-prompt', prefillTokens: 8, generatedTokens: 4, batch: 1 };
  /** A model that takes `seconds` a run (prefill only) and logs what the protocol does with it. */
  const fake = (name: string, seconds: (build: number) => number, log: string[]): ExternalModel => {
    let builds = 0;
    return {
      open: async () => {
        const build = builds++;
        log.push(`open ${name}`);
        return {
          run: async () => {
            log.push(`run ${name}`);
            return { prefillSeconds: seconds(build), decodeSeconds: 0 };
          },
          release: async () => void log.push(`release ${name}`),
        };
      },
    };
  };

  it('builds every model afresh each round, warms it up, times it a few times, and alternates the order', async () => {
    const log: string[] = [];
    const c = await compareModels([fake('parent', () => 0.002, log), fake('child', () => 0.001, log)], scenario, { runtime: cpuRuntime(1), warmup: 1, minRounds: 3, maxRounds: 3, precision: 0.03, maxSeconds: 60 });
    const runs = (a: string) => Array.from({ length: 1 + TIMED_RUNS }, () => `run ${a}`);
    const round = (a: string, b: string) => [`open ${a}`, ...runs(a), `release ${a}`, `open ${b}`, ...runs(b), `release ${b}`];
    expect(log).toEqual([...round('parent', 'child'), ...round('child', 'parent'), ...round('parent', 'child')]);
    expect(c.speedups[0].estimate).toBeCloseTo(2, 10);
    expect(c.speedups[0].rounds).toBe(3);
  });

  it('keeps the fastest of a build\'s runs: a stalled run does not make a model look slower', async () => {
    // Each build of the parent stalls to three times its time in the first run after its warm-up (babyllama's batch-8
    // prefill stalled in 12 of 30 builds): a protocol that timed that run alone would see only stalls.
    const stalling: ExternalModel = {
      open: async () => {
        let run = 0;
        return { run: async () => ({ prefillSeconds: run++ === 1 ? 0.006 : 0.002, decodeSeconds: 0 }), release: async () => {} };
      },
    };
    const c = await compareModels([stalling, fake('child', () => 0.001, [])], scenario, { runtime: cpuRuntime(1), warmup: 1, minRounds: 4, maxRounds: 4, precision: 0.03, maxSeconds: 60 });
    expect(c.rounds[0].map((t) => t.prefillSeconds)).toEqual([0.002, 0.002, 0.002, 0.002]);
    expect(c.speedups[0].estimate).toBeCloseTo(2, 10);
  });

  it('by default times a long model past its second run, which pays for the memory onnxruntime planned in its first', async () => {
    // A model of runs too long to be timed more than once a build, whose second run is slow (the SmolLM2-135M shape's
    // prefill: 700 ms in the second run, 450 ms from the third on).
    const secondSlow = (seconds: number): ExternalModel => ({
      open: async () => {
        let run = 0;
        return { run: async () => ({ prefillSeconds: run++ === 1 ? 1.6 * seconds : seconds, decodeSeconds: 0 }), release: async () => {} };
      },
    });
    const c = await compareModels([secondSlow(2 * FASTEST_OF_SECONDS), fake('child', () => FASTEST_OF_SECONDS, [])], scenario, { ...DEFAULT_PROTOCOL, runtime: cpuRuntime(1), minRounds: 2, maxRounds: 2 });
    expect(c.rounds[0].map((t) => t.prefillSeconds)).toEqual([2 * FASTEST_OF_SECONDS, 2 * FASTEST_OF_SECONDS]);
    expect(c.speedups[0].estimate).toBeCloseTo(2, 10);
  });

  it('times long runs once a build, and every model of a comparison as often as the first', async () => {
    const log: string[] = [];
    await compareModels([fake('parent', () => FASTEST_OF_SECONDS, log), fake('child', () => 0.001, log)], scenario, { runtime: cpuRuntime(1), warmup: 1, minRounds: 2, maxRounds: 2, precision: 0.03, maxSeconds: 60 });
    expect(log.filter((l) => l === 'run parent')).toHaveLength(2 * 2);
    expect(log.filter((l) => l === 'run child')).toHaveLength(2 * 2);
    expect(runsPerBuild(FASTEST_OF_SECONDS / 2)).toBe(TIMED_RUNS);
    expect(runsPerBuild(FASTEST_OF_SECONDS)).toBe(1);
  });

  it('spans builds in its interval: a speed-up that changes from build to build is not called precise', async () => {
    // Each build of the child runs at its own speed (×1.5 … ×1.9), steady within a build: rounds of one build
    // would give an interval of zero width around one of them.
    const perBuild = [1.5, 1.9, 1.6, 1.8, 1.7, 1.55];
    const c = await compareModels([fake('parent', () => 0.003, []), fake('child', (b) => 0.003 / perBuild[b % perBuild.length], [])], scenario, { runtime: cpuRuntime(1), warmup: 1, minRounds: 6, maxRounds: 6, precision: 0.03, maxSeconds: 60 });
    const s = c.speedups[0];
    expect(s.low).toBeLessThan(1.6);
    expect(s.high).toBeGreaterThan(1.75);
    expect(preciseEnough(s, 0.03)).toBe(false);
  });

  it('times whole models in sessions that keep onnxruntime\'s memory arena across runs, sub-block stacks without it', async () => {
    // Whole models without it, under the CLI's fixed 1 MiB mmap threshold, ran 2.2x slower in some builds; sub-block
    // stacks with it, in some processes 1.3-2.7x (see SessionUse).
    const config = configOf({ hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64, vocab: 50 });
    const runtime = cpuRuntime(1);
    const arenas: boolean[] = [];
    const options = runtime.sessionOptions.bind(runtime);
    runtime.sessionOptions = (o = {}) => {
      const made = options(o);
      arenas.push(made.enableCpuMemArena === true);
      return made;
    };
    const arch = parentArchitecture(config);
    const s = { name: 's', prefillTokens: 4, generatedTokens: 3, batch: 2 };
    await compareModels([{ config, weights: timingWeights(config, arch, new Rng(1)), arch }], s, { runtime, warmup: 1, minRounds: 2, maxRounds: 2, precision: 1, maxSeconds: 60 });
    expect(arenas).toEqual([true, true]);
    arenas.length = 0;
    await measureSubBlocks(config, { attention: [['gqa2', { kind: 'gqa', kvHeads: 2 }]], ffn: [['linear', { kind: 'linear' }]] }, s, { runtime, repeats: 1, warmup: 0 });
    expect(arenas.length).toBeGreaterThan(3);
    expect(arenas.some((a) => a)).toBe(false);
  });
});
