import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Architecture } from '../src/arch/variant.js';
import { checkpointDirOf, defaultLearningRate, distillChild, linearWeightScale, type DistillOptions } from '../src/distill/distill.js';
import { deciConfigJson } from '../src/export/export.js';
import { readProvenance } from '../src/export/provenance.js';
import { loadCheckpoint, openCheckpoint } from '../src/model/checkpoint.js';
import { paragraphs, readText } from '../src/data/text.js';
import { takeWindows } from '../src/data/sequences.js';
import { loadTokenizer } from '../src/model/tokenizer.js';
import { distributionOn, modelDivergence } from '../src/lm/divergence.js';
import { readModelConfig } from '../src/model/config.js';
import { writeCheckpoint } from '../src/model/save.js';
import type { ModelWeights } from '../src/model/weights.js';
import { adamWScalars, appendAdamW, learningRate, OPTIMIZER } from '../src/train/optimizer.js';
import { appendGradients } from '../src/onnx/autodiff.js';
import { DataType, GraphBuilder } from '../src/onnx/graph-builder.js';
import { float32Tensor } from '../src/onnx/runtime.js';
import { modelDir, RUNTIME, TINYSTORIES, tempDir } from './support/fixtures.js';

const ROOT = resolve(import.meta.dirname, '..');
const root = tempDir();
const parent = loadCheckpoint(modelDir('stories260K'));

/** A child of stories260K with two attention sub-blocks removed, written as an exported child would be. */
function writeChild(): string {
  const dir = join(root, 'child');
  const copy = (t: { data: Float32Array; shape: readonly number[] }) => ({ data: t.data.slice(), shape: t.shape });
  const arch: Architecture = parent.architecture.map((b, i) => (i === 1 || i === 3 ? { ...b, attention: { kind: 'noop' } } : b));
  const embed = copy(parent.weights.embed);
  const weights: ModelWeights = {
    embed,
    lmHead: embed,
    finalNorm: copy(parent.weights.finalNorm),
    layers: parent.weights.layers.map((l, i) => ({
      attention: i === 1 || i === 3 ? { variant: { kind: 'noop' }, tensors: {} } : { variant: l.attention.variant, tensors: Object.fromEntries(Object.entries(l.attention.tensors).map(([k, t]) => [k, copy(t)])) },
      ffn: { variant: l.ffn.variant, tensors: Object.fromEntries(Object.entries(l.ffn.tensors).map(([k, t]) => [k, copy(t)])) },
    })),
  };
  writeCheckpoint(dir, deciConfigJson(readModelConfig(parent.dir).raw, parent.config, arch), parent.config, arch, weights);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(parent.dir, f), join(dir, f));
  return dir;
}

const child = writeChild();
const options = (extra: Partial<DistillOptions> = {}): DistillOptions => ({
  data: TINYSTORIES, tokens: 24 * 4 * 64, loss: { kl: 1, cosine: 1 }, lr: 2e-3, warmup: 4, batch: 4, seqLen: 64, clip: 1, seed: 0,
  checkpointEvery: 5, evalTokens: 1024, runtime: RUNTIME, ...extra,
});

describe('the optimizer step in the training graph', () => {
  /** One AdamW step with clipping on a weight whose gradient is `grad` (loss Σ w·grad). */
  async function step(w: Float32Array, m: Float32Array, v: Float32Array, grad: Float32Array, t: number, lr: number, clip: number) {
    const g = new GraphBuilder('adamw');
    g.input('w', DataType.FLOAT, [w.length]);
    const loss = g.node('ReduceSum', [g.node('Mul', ['w', g.initializer('grad', grad, [grad.length])]), g.int64([0])], { keepdims: 0 });
    appendAdamW(g, new Map([['w', { data: w, shape: [w.length] }]]), appendGradients(g, loss, ['w'], { expose: false }), clip);
    const session = await RUNTIME.session(g);
    const s = adamWScalars(t, lr);
    const out = await session.run({ w: float32Tensor(w, [w.length]), [OPTIMIZER.moment('m', 'w')]: float32Tensor(m, [w.length]), [OPTIMIZER.moment('v', 'w')]: float32Tensor(v, [w.length]),
      [OPTIMIZER.lr]: float32Tensor(Float32Array.of(s.lr), []), [OPTIMIZER.c1]: float32Tensor(Float32Array.of(s.c1), []), [OPTIMIZER.c2]: float32Tensor(Float32Array.of(s.c2), []) });
    await session.release();
    return { w: out[OPTIMIZER.next('w')].data as Float32Array, m: out[OPTIMIZER.nextMoment('m', 'w')].data as Float32Array, v: out[OPTIMIZER.nextMoment('v', 'w')].data as Float32Array, norm: out[OPTIMIZER.gradNorm].data[0] as number };
  }

  it('takes AdamW steps as torch.optim.AdamW does (closed form of the first two steps)', async () => {
    const lr = 0.1;
    const one = await step(Float32Array.of(1, -2), new Float32Array(2), new Float32Array(2), Float32Array.of(0.5, 0.5), 0, lr, 100);
    // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + eps) after decay by (1 − lr·wd).
    expect(one.w[0]).toBeCloseTo(1 * (1 - lr * 0.01) - lr * (0.5 / (0.5 + 1e-8)), 6);
    expect(one.w[1]).toBeCloseTo(-2 * (1 - lr * 0.01) - lr * (0.5 / (0.5 + 1e-8)), 6);
    const two = await step(one.w, one.m, one.v, Float32Array.of(-0.5, 0.5), 1, lr, 100);
    const m = (0.9 * 0.05 - 0.05) / (1 - 0.9 ** 2);
    const v = (0.999 * 0.00025 + 0.00025) / (1 - 0.999 ** 2);
    expect(two.w[0]).toBeCloseTo(one.w[0] * (1 - lr * 0.01) - (lr * m) / (Math.sqrt(v) + 1e-8), 6);
  });

  it('clips the gradients to the global norm first, as clip_grad_norm_ does', async () => {
    const r = await step(Float32Array.of(0, 0), new Float32Array(2), new Float32Array(2), Float32Array.of(3, 4), 0, 0.1, 1);
    expect(r.norm).toBeCloseTo(5, 6);
    // The first moment holds (1 − β₁)·g·(1 / (5 + 1e-6)).
    expect(r.m[0]).toBeCloseTo(0.1 * 3 / (5 + 1e-6), 7);
    expect(r.m[1]).toBeCloseTo(0.1 * 4 / (5 + 1e-6), 7);
  });

  it('warms up linearly and decays by a cosine to zero', () => {
    expect(learningRate(0, 1, 4, 20)).toBeCloseTo(0.25, 12);
    expect(learningRate(3, 1, 4, 20)).toBeCloseTo(1, 12);
    expect(learningRate(12, 1, 4, 20)).toBeCloseTo(0.5, 12);
    expect(learningRate(20, 1, 4, 20)).toBeCloseTo(0, 12);
  });
});

describe('the default learning rate', () => {
  it("follows the child's weight scale: the median RMS of its linear weights, squared, within 1e-5–2e-3", () => {
    const scaled = (k: number): ModelWeights => ({
      ...parent.weights,
      layers: parent.weights.layers.map((l) => ({
        attention: { ...l.attention, tensors: Object.fromEntries(Object.entries(l.attention.tensors).map(([n, t]) => [n, { data: t.data.map((x) => k * x), shape: t.shape }])) },
        ffn: { ...l.ffn, tensors: Object.fromEntries(Object.entries(l.ffn.tensors).map(([n, t]) => [n, { data: t.data.map((x) => k * x), shape: t.shape }])) },
      })),
    });
    // Brute force: every 2-D layer tensor's RMS, sorted, the middle one(s).
    const rms = parent.weights.layers.flatMap((l) => [...Object.values(l.attention.tensors), ...Object.values(l.ffn.tensors)]).filter((t) => t.shape.length === 2)
      .map((t) => Math.sqrt(Array.from(t.data).reduce((a, x) => a + x * x, 0) / t.data.length)).sort((a, b) => a - b);
    const mid = rms.length % 2 === 1 ? rms[(rms.length - 1) / 2] : (rms[rms.length / 2 - 1] + rms[rms.length / 2]) / 2;
    expect(linearWeightScale(parent.weights)).toBeCloseTo(mid, 6);
    const s = linearWeightScale(parent.weights);
    expect(defaultLearningRate(scaled(0.5))).toBeCloseTo(2e-3 * ((0.5 * s) / 0.125) ** 2, 9);
    expect(defaultLearningRate(scaled(0.5))).toBeCloseTo(defaultLearningRate(scaled(0.25)) * 4, 9);
    expect(defaultLearningRate(scaled(100))).toBe(2e-3);
    expect(defaultLearningRate(scaled(1e-3))).toBe(1e-5);
    expect(defaultLearningRate(parent.weights, 'lora')).toBe(1e-3);
  });
});

describe('tessera distill', () => {
  it('brings the child closer to its parent on text it never trained on, and writes it as export does', async () => {
    const out = join(root, 'distilled');
    const r = await distillChild(child, parent, out, options());
    if (r.status !== 'complete') throw new Error('interrupted');
    expect(r.record.after.kl).toBeLessThan(0.9 * r.record.before.kl);
    expect(r.record.after.perplexity).toBeLessThan(r.record.before.perplexity);
    expect(r.record.train.paragraphs[1]).toBeLessThanOrEqual(r.record.evaluation.paragraphs[0]);
    const back = loadCheckpoint(out);
    expect(back.architecture).toEqual(loadCheckpoint(child).architecture);
    for (const f of ['config.json', 'model.safetensors', 'model.onnx', 'model.onnx.data', 'tokenizer.json', 'tessera.json', 'distillation.json']) expect(existsSync(join(out, f)), f).toBe(true);
    const provenance = readProvenance(out)!;
    expect(provenance.distillation!.steps).toBe(24);
    expect(provenance.data.calibration).toEqual(r.record.train);
    expect(existsSync(`${out}.checkpoint`)).toBe(false);
  });

  it('resumes an interrupted run and ends with the same weights, bit for bit, as an uninterrupted one', async () => {
    const whole = join(root, 'whole');
    await distillChild(child, parent, whole, options({ tokens: 12 * 4 * 64, checkpointEvery: 4 }));
    const resumed = join(root, 'resumed');
    const abort = new AbortController();
    const stop = { stage: () => {}, progress: () => (done: number) => void (done >= 6 && abort.abort()) };
    const first = await distillChild(child, parent, resumed, options({ tokens: 12 * 4 * 64, checkpointEvery: 4, signal: abort.signal, reporter: stop }));
    expect(first).toEqual({ status: 'interrupted', steps: 6 });
    expect(existsSync(resumed)).toBe(false);
    const second = await distillChild(child, parent, resumed, options({ tokens: 12 * 4 * 64, checkpointEvery: 4 }));
    expect(second.status).toBe('complete');
    expect(readFileSync(join(resumed, 'model.safetensors')).equals(readFileSync(join(whole, 'model.safetensors')))).toBe(true);
  });

  it('survives kill -9 at a random point: rerun, it resumes and ends with the same weights', async () => {
    const whole = join(root, 'whole');
    const killed = join(root, 'killed');
    const args = [join(ROOT, 'bin/tessera.js'), 'distill', child, '--parent', parent.dir, '--out', killed, '--tokens', String(12 * 4 * 64), '--batch', '4', '--seq-len', '64', '--warmup', '4', '--checkpoint-every', '4', '--eval-tokens', '1024', '--threads', '1', '--loss', 'kl+cosine'];
    const proc = spawn(process.execPath, args, { stdio: 'ignore' });
    // Kill it once it has written a checkpoint, at a moment the test does not choose.
    while (!existsSync(join(checkpointDirOf(killed), 'latest.json'))) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, Math.random() * 300));
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
    const rerun = spawnSync(process.execPath, args, { encoding: 'utf8' });
    expect(rerun.status, rerun.stderr).toBe(0);
    expect(readFileSync(join(killed, 'model.safetensors')).equals(readFileSync(join(whole, 'model.safetensors')))).toBe(true);
  });

  it('through adapters (--method lora): closer to the parent on unseen text; the adapters merged into the weights written, which evaluate as recorded', async () => {
    const out = join(root, 'adapted');
    const r = await distillChild(child, parent, out, options({ method: 'lora', lora: { rank: 4, alpha: 8 }, lr: 1e-2 }));
    if (r.status !== 'complete') throw new Error('interrupted');
    expect(r.record.method).toBe('lora');
    expect(r.record.adapters).toEqual({ rank: 4, alpha: 8 });
    expect(r.record.after.kl).toBeLessThan(0.9 * r.record.before.kl);
    const back = openCheckpoint(out);
    expect(back.architecture).toEqual(loadCheckpoint(child).architecture);
    // The written weights are the merged ones the record was measured on.
    const evalWindows = r.record.evaluation;
    const docs = paragraphs(readText(TINYSTORIES));
    const windows = takeWindows(loadTokenizer(parent.dir), docs, evalWindows.paragraphs[0], TINYSTORIES, 64, 1024);
    const reference = await distributionOn(parent.config, parent.source, windows, 64, RUNTIME);
    const again = await modelDivergence(back.config, back.source, windows.ids, reference, RUNTIME);
    expect(again.kl).toBeCloseTo(r.record.after.kl, 6);
    // Weights without an adapter (norms, embedding) are the child's, bit for bit.
    expect(back.source.embed().data).toEqual(loadCheckpoint(child).weights.embed.data);
    expect(back.source.layer(0).ffn.tensors.norm.data).toEqual(loadCheckpoint(child).weights.layers[0].ffn.tensors.norm.data);
  });

  it('through adapters: an interrupted run resumes and ends with the same weights, bit for bit', async () => {
    const o = { tokens: 8 * 4 * 64, checkpointEvery: 3, method: 'lora' as const, lora: { rank: 4, alpha: 8 } };
    const whole = join(root, 'adapted-whole');
    await distillChild(child, parent, whole, options(o));
    const resumed = join(root, 'adapted-resumed');
    const abort = new AbortController();
    const stop = { stage: () => {}, progress: () => (done: number) => void (done >= 4 && abort.abort()) };
    expect(await distillChild(child, parent, resumed, options({ ...o, signal: abort.signal, reporter: stop }))).toEqual({ status: 'interrupted', steps: 4 });
    expect((await distillChild(child, parent, resumed, options(o))).status).toBe('complete');
    expect(readFileSync(join(resumed, 'model.safetensors')).equals(readFileSync(join(whole, 'model.safetensors')))).toBe(true);
  });

  it('answers bad input with one line and writes nothing', () => {
    const cli = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'bin/tessera.js'), 'distill', ...args], { encoding: 'utf8' });
    const short = join(root, 'short.txt');
    writeFileSync(short, 'Once upon a time.\n\nThe end.\n');
    // A child whose config.json says other layers than its weights hold.
    const mismatched = join(root, 'mismatched');
    cpSync(child, mismatched, { recursive: true });
    const config = JSON.parse(readFileSync(join(mismatched, 'config.json'), 'utf8'));
    config.block_configs[0].attention = { n_heads_in_group: 8, no_op: false, replace_with_linear: false };
    writeFileSync(join(mismatched, 'config.json'), JSON.stringify(config));
    for (const [args, message] of [
      [[child, '--out', join(root, 'x1'), '--tokens', '0'], /option --tokens: "0" is not a positive integer/],
      [[child, '--out', join(root, 'x2'), '--parent', modelDir('babyllama-tok105-1M')], /child: is not a child of .*babyllama-tok105-1M \(hidden 64 vs 128, vocab 512 vs 105\)/],
      [[child, '--out', join(root, 'x3'), '--parent', parent.dir, '--data', short], /short\.txt: its first 60% holds 0 windows of 128 tokens, fewer than one batch of 16/],
      [[mismatched, '--out', join(root, 'x4'), '--parent', parent.dir], /mismatched\/model\.safetensors: tensor "model\.layers\.0\.self_attn\.k_proj\.weight" has shape \[32, 64\]; expected \[8, 64\] from config\.json/],
      [[child, '--out', child, '--parent', parent.dir], /child: already exists; choose another --out or remove it/],
      [[child, '--out', join(short, 'out'), '--parent', parent.dir], /short\.txt\/out: cannot write there \(.*short\.txt is not a writable directory\)/],
    ] as const) {
      const r = cli(...args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    }
    for (const d of ['x1', 'x2', 'x3', 'x4']) expect(existsSync(join(root, d))).toBe(false);
  });
});
