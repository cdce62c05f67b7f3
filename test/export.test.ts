import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { evaluateChild, timingProfile } from '../src/evaluate/evaluate.js';
import { exportSolution } from '../src/export/export.js';
import { onnxAttentionFor } from '../src/export/model-dir.js';
import { parentArchitecture } from '../src/arch/config.js';
import { randomWeights } from '../src/model/random.js';
import { Rng } from '../src/util/rng.js';
import { loadCheckpoint, storedDtype } from '../src/model/checkpoint.js';
import { bf16ToF32, f32ToBf16 } from '../src/model/dtype.js';
import { encodeTensor } from '../src/model/save.js';
import { configText } from '../src/arch/decilm.js';
import { DecoderSession } from '../src/onnx/session.js';
import { writeReport } from '../src/report/report.js';
import { Run } from '../src/run/run.js';
import { ChildAssembler } from '../src/search/child.js';
import { solve } from '../src/search/solve.js';
import { readSpec } from '../src/run/spec.js';
import { maxAbsDiff } from '../src/util/tensor.js';
import { distinctVariants } from '../src/space/variants.js';
import { DRIFT_TOLERANCE } from '../src/hardware/drift.js';
import { buildLibrary, configOf, modelDir, TINYSTORIES, tempDir, RUNTIME } from './support/fixtures.js';

const ROOT = resolve(import.meta.dirname, '..');
const root = tempDir();
const run = join(root, 'run');
const CPU = join(ROOT, 'hardware-profiles/cpu-local.json');

describe('export, evaluate and report a solved child', async () => {
  const { run: built } = await buildLibrary({ model: modelDir('stories260K'), space: join(ROOT, 'search-spaces/puzzle.json'), data: TINYSTORIES, out: run, calibTokens: 1024, validTokens: 512, seqLen: 64, workers: 2 });
  const [solution] = await solve(built, { hardware: CPU, budget: { paramsRatio: 0.75 }, metric: 'kl', strategy: 'mip-tabu', solver: 'highs', timeLimitSeconds: 30, solutions: 1, diversity: 2, tabuIterations: 0, samples: 1, seed: 0, runtime: RUNTIME });
  const out = join(root, 'child');
  const exported = exportSolution(built, solution.id, { out });
  const parent = built.parent();
  const assembled = new ChildAssembler(parent.config, parent.source, built.library()).weights(solution.architecture);
  const ids = Int32Array.from({ length: 2 * 20 }, (_, k) => (k * 37 + 11) % 512);

  it('writes a DeciLM config with block_configs, null global sizes, and the tokenizer', () => {
    expect(exported).toMatchObject({ dir: out, architecture: solution.architecture, reused: false });
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.architectures).toEqual(['DeciLMForCausalLM']);
    expect(config.model_type).toBe('nemotron-nas');
    expect(config.num_key_value_heads).toBeNull();
    expect(config.intermediate_size).toBeNull();
    expect(config.block_configs).toHaveLength(5);
    // What the HF ecosystem reads: the published DeciLM code, the dtype, every key of NVIDIA's block_config.py.
    expect(config.auto_map).toEqual({ AutoConfig: 'nvidia/Llama-3_1-Nemotron-51B-Instruct--configuration_decilm.DeciLMConfig', AutoModelForCausalLM: 'nvidia/Llama-3_1-Nemotron-51B-Instruct--modeling_decilm.DeciLMForCausalLM' });
    expect(config.torch_dtype).toBe('float32');
    for (const b of config.block_configs) {
      expect(Object.keys(b.attention).sort()).toEqual(['n_heads_in_group', 'no_op', 'num_sink_tokens', 'replace_with_linear', 'sparsify', 'unshifted_sink', 'use_prefill_window_in_sink_attention', 'window_length']);
      expect(Object.keys(b.ffn)).toEqual(expect.arrayContaining(['ffn_mult', 'no_op', 'replace_with_linear', 'sparsify']));
      if (b.attention.no_op || b.attention.replace_with_linear) expect(b.attention.n_heads_in_group).toBeNull();
      if (b.ffn.no_op || b.ffn.replace_with_linear) expect(b.ffn.ffn_mult).toBeNull();
    }
    for (const f of ['model.safetensors', 'model.onnx', 'model.onnx.data', 'tokenizer.json', 'tokenizer_config.json', 'tessera.json']) expect(existsSync(join(out, f)), f).toBe(true);
  });

  it('loads back into Tessera with the same architecture, weights and logits', async () => {
    const back = loadCheckpoint(out);
    expect(back.architecture).toEqual(solution.architecture);
    expect(back.weights).toEqual(assembled);
    const before = await DecoderSession.create(parent.config, assembled, {}, RUNTIME);
    const after = await DecoderSession.create(back.config, back.weights, {}, RUNTIME);
    const a = (await before.run({ ids, batch: 2, seq: 20 })).logits!;
    const b = (await after.run({ ids, batch: 2, seq: 20 })).logits!;
    expect(maxAbsDiff(a.data, b.data)).toBe(0);
  });

  it('ships a standalone model.onnx (fused attention by default, standard ops on request) that onnxruntime runs to the same logits', async () => {
    const logitsOf = async (path: string) => (await (await ort.InferenceSession.create(path)).run({ input_ids: new ort.Tensor('int32', ids, [2, 20]) })).logits.data as Float32Array;
    const reference = async (fusedAttention: boolean) => (await (await DecoderSession.create(parent.config, assembled, { fusedAttention }, RUNTIME)).run({ ids, batch: 2, seq: 20 })).logits!.data;
    expect(maxAbsDiff(await logitsOf(join(out, 'model.onnx')), await reference(true))).toBeLessThanOrEqual(1e-5);
    const standard = join(root, 'standard-onnx');
    exportSolution(built, solution.id, { out: standard, onnx: 'standard' });
    expect(readFileSync(join(standard, 'model.onnx')).includes('GroupQueryAttention')).toBe(false);
    expect(readFileSync(join(out, 'model.onnx')).includes('GroupQueryAttention')).toBe(true);
    expect(maxAbsDiff(await logitsOf(join(standard, 'model.onnx')), await reference(false))).toBeLessThanOrEqual(1e-5);
  });

  it('writes model.safetensors in the dtype asked for (bfloat16: the float32 weights rounded to nearest even), float16 refused beyond its range', async () => {
    const half = join(root, 'child-bf16');
    exportSolution(built, solution.id, { out: half, dtype: 'BF16' });
    expect(JSON.parse(readFileSync(join(half, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    expect(storedDtype(half)).toBe('BF16');
    expect(statSync(join(half, 'model.safetensors')).size).toBeLessThan(0.55 * statSync(join(out, 'model.safetensors')).size);
    const back = loadCheckpoint(half);
    const rounded = (t: { data: Float32Array }) => bf16ToF32(f32ToBf16(t.data));
    expect(back.weights.embed.data).toEqual(rounded(assembled.embed));
    back.weights.layers.forEach((l, i) => {
      for (const [role, t] of Object.entries(l.ffn.tensors)) expect(t.data, `${i}.ffn.${role}`).toEqual(rounded(assembled.layers[i].ffn.tensors[role]));
    });
    expect(() => encodeTensor({ data: Float32Array.of(1, 70000), shape: [2] }, 'F16', 'model.layers.3.mlp.down_proj.weight')).toThrow(/model\.layers\.3\.mlp\.down_proj\.weight: holds 70000, beyond float16's range \(±65504\); use --dtype bf16 or f32/);
    expect(configText({ block_configs: [{ ffn: { ffn_mult: 2 } }, { ffn: { ffn_mult: 1.3125 } }], rope_theta: 10000 })).toContain('"ffn_mult": 2.0');
    expect(JSON.parse(configText({ block_configs: [{ ffn: { ffn_mult: 2 } }] })).block_configs[0].ffn.ffn_mult).toBe(2);
  });

  it('keeps a child already exported from the same spec, and refuses to overwrite any other directory', () => {
    const written = statSync(join(out, 'model.safetensors')).mtimeMs;
    expect(exportSolution(built, solution.id, { out }).reused).toBe(true);
    expect(statSync(join(out, 'model.safetensors')).mtimeMs).toBe(written);
    const other = join(root, 'not-a-child');
    mkdirSync(other);
    expect(() => exportSolution(built, solution.id, { out: other })).toThrow(/not-a-child: already exists; choose another --out or remove it/);
  });

  it('evaluates the child on text after what the search used, and times it against the parent', async () => {
    const e = await evaluateChild(out, built.parent(), { data: TINYSTORIES, tokens: 512, seqLen: 64, prompts: 2, promptTokens: 8, generateTokens: 8, timing: { hardware: CPU, warmup: 1, minRounds: 2, maxRounds: 2, precision: 0.03, maxSeconds: 60 }, runtime: RUNTIME });
    const provenance = JSON.parse(readFileSync(join(out, 'tessera.json'), 'utf8'));
    expect(e.text.paragraphs[0]).toBe(provenance.data.validation.paragraphs[1]);
    expect(e.kl).toBeGreaterThan(0);
    expect(e.perplexity.child).toBeGreaterThan(e.perplexity.parent * 0.9);
    expect(e.greedyAgreement.tokens).toBe(16);
    expect(e.latency.map((l) => l.scenario)).toEqual(['single-prompt', 'batch-8']);
    for (const l of e.latency) {
      expect(l.interval.rounds).toBe(2);
      expect(l.interval.low).toBeLessThanOrEqual(l.measuredSpeedup);
      expect(l.measuredSpeedup).toBeLessThanOrEqual(l.interval.high);
      expect(l.said).toContain(l.withinNoise ? 'within noise' : `×${l.measuredSpeedup.toFixed(2)}`);
      // cpu-local's roofline times are spec-sheet estimates: no measure of this machine's state to compare with.
      expect(l.predictedParentSeconds).toBeGreaterThan(0);
      expect(l.machineDrift).toBeNull();
    }
    expect(JSON.parse(readFileSync(join(out, 'evaluation.json'), 'utf8')).kl).toBe(e.kl);
  });

  it('times a scenario again while its parent runs slower than a profile measured here predicts, and records each timing', async () => {
    // A measured profile whose every sub-block takes 0.1 µs: the parent always runs far slower than it predicts.
    const { config } = parent;
    const variants = distinctVariants(built.space());
    const tiny = { prefillSeconds: 1e-7, decodeSeconds: 1e-7 };
    const base = JSON.parse(readFileSync(CPU, 'utf8'));
    const scenarios = Object.fromEntries(base.workload.scenarios.map((s: { name: string }) => [s.name, Object.fromEntries([...variants.attention, ...variants.ffn].map(([key]) => [key, tiny]).concat([['rest', tiny]]))]));
    const measured = join(root, 'measured-here.json');
    writeFileSync(measured, JSON.stringify({ ...base, name: 'measured-here', measured: { model: { dir: parent.dir, hiddenSize: config.hiddenSize, numHeads: config.numHeads, headDim: config.headDim, vocabSize: config.vocabSize }, threads: RUNTIME.threads, repeats: 1, scenarios } }));
    const timing = { hardware: measured, warmup: 1, minRounds: 2, maxRounds: 2, precision: 0.03, maxSeconds: 60 };
    const evaluate = (retime?: { attempts: number; pauseSeconds: number }) => evaluateChild(out, parent, { data: TINYSTORIES, tokens: 128, seqLen: 64, prompts: 0, promptTokens: 8, generateTokens: 8, timing: { ...timing, retime }, record: false, runtime: RUNTIME });
    const retimed = await evaluate({ attempts: 2, pauseSeconds: 0 });
    for (const l of retimed.latency) {
      expect(l.earlierDrifts).toHaveLength(1);
      expect(l.earlierDrifts![0]).toBeGreaterThan(1 + DRIFT_TOLERANCE);
      expect(l.machineDrift).toBeGreaterThan(1 + DRIFT_TOLERANCE);
    }
    for (const l of (await evaluate()).latency) expect(l.earlierDrifts).toBeUndefined();
  });

  it("times this machine's profile unless the child was searched for this machine (not a GPU profile's scenarios on a CPU)", () => {
    expect(timingProfile(out)).toMatchObject({ path: CPU, note: expect.stringContaining('the profile the child was searched for') });
    const gpuChild = join(root, 'searched-for-h100');
    mkdirSync(gpuChild, { recursive: true });
    const h100 = join(ROOT, 'hardware-profiles/h100-sxm.json');
    writeFileSync(join(gpuChild, 'tessera.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(out, 'tessera.json'), 'utf8')), hardware: h100 }));
    const t = timingProfile(gpuChild);
    expect(t.path).toBe(CPU);
    expect(t.note).toContain(`searched for h100-sxm, not this machine (pass --hardware ${h100}`);
  });

  it('writes a self-contained report with the architecture picture, the frontier and the commands', async () => {
    const r = await writeReport(built, { speedups: [1.1, 1.5], runtime: RUNTIME });
    const html = readFileSync(r.html, 'utf8');
    const md = readFileSync(r.md, 'utf8');
    expect(html.match(/<svg /g)).toHaveLength(2);
    expect(html.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, '')).not.toMatch(/https?:\/\//);
    expect(md).toContain('![frontier](frontier.svg)');
    expect(md).toContain(`npx tessera solve --run ${run} --hardware ${CPU} --params-ratio 0.75 --strategy mip-tabu`);
    expect(md).toMatch(/\| budget ×1\.1 \| ×[\d.]+ \| [\d.]+ \| [\d.]+ \|/);
    expect(existsSync(join(run, 'report', 'architectures.svg'))).toBe(true);
    // The frontier's points are solutions of the run, traced with the solution's own strategy and options.
    const frontier = ['speedup1.1-mip-tabu-cpu-local-1', 'speedup1.5-mip-tabu-cpu-local-1'].map((id) => readSpec(join(run, 'solutions', id, 'spec.json')));
    for (const f of frontier) expect([f.origin, f.request.tabuIterations]).toEqual(['frontier', 0]);
  });

  it('re-solves nothing the run already solved when the report is written again', async () => {
    const spec = join(run, 'solutions', 'speedup1.5-mip-tabu-cpu-local-1', 'spec.json');
    const written = statSync(spec).mtimeMs;
    await writeReport(Run.open(run), { speedups: [1.1, 1.5], runtime: RUNTIME });
    expect(statSync(spec).mtimeMs).toBe(written);
  });
});

describe("model.onnx's attention", () => {
  it('is the fused kernel where onnxruntime runs it, standard ops where it does not, and refuses the kernel there by name', async () => {
    const narrow = configOf({ hidden: 16, layers: 1, heads: 4, kvHeads: 2, intermediate: 24, vocab: 32 });
    const wide = configOf({ hidden: 32, layers: 1, heads: 4, kvHeads: 2, intermediate: 24, vocab: 32 });
    expect(onnxAttentionFor(wide, undefined)).toBe('fused');
    expect(onnxAttentionFor(wide, 'standard')).toBe('standard');
    expect(onnxAttentionFor(narrow, undefined)).toBe('standard');
    expect(() => onnxAttentionFor(narrow, 'fused')).toThrow(/head size that is a multiple of 8, and this model's is 4; use --onnx standard/);
    // What the refusal prevents: onnxruntime's kernel fails on such heads at run time.
    const weights = randomWeights(narrow, parentArchitecture(narrow), new Rng(1));
    await expect(DecoderSession.create(narrow, weights, { logits: 'last', fusedAttention: true }, RUNTIME).then((s) => s.run({ ids: Int32Array.of(1, 2, 3), batch: 1, seq: 3 }))).rejects.toThrow(/head_size must be a multiple of 8/);
  });
});
