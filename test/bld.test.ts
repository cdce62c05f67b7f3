import { readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CandidateScore } from '../src/bld/candidate.js';
import { distributionOn, referenceNll } from '../src/lm/divergence.js';
import { solve } from '../src/search/solve.js';
import { maxAbsDiff } from '../src/util/tensor.js';
import { SafetensorsFile } from '../src/model/safetensors.js';
import { RIDGE_GRID } from '../src/bld/derive.js';
import { Run } from '../src/run/run.js';
import { buildLibrary, modelDir, RUNTIME, TINYSTORIES, tempDir, type LibraryBuild } from './support/fixtures.js';

const root = tempDir();
const base = (out: string, workers: number, model = 'stories260K'): LibraryBuild => ({
  model: modelDir(model),
  space: 'search-spaces/puzzle.json',
  data: TINYSTORIES,
  out: join(root, out),
  calibTokens: 1024,
  validTokens: 512,
  seqLen: 64,
  workers,
});

const byKey = (scores: CandidateScore[]) => new Map(scores.map((s) => [s.key, s]));

describe('babyllama-tok105-1M block library', async () => {
  const baby = (await buildLibrary(base('baby', 2, 'babyllama-tok105-1M'))).library.scores();
  it('has the same properties: parent KL ≈ 0, fits never worse, narrower FFNs no better', () => {
    expect(baby).toHaveLength(70);
    for (const s of baby) {
      if (!s.fitted && (s.variant.kind === 'gqa' || s.variant.kind === 'swiglu') && s.nmseInit < 1e-8) expect(Math.abs(s.kl!), s.key).toBeLessThanOrEqual(1e-6);
      if (s.fitted) expect(s.nmse, s.key).toBeLessThanOrEqual(s.nmseInit + 1e-3);
    }
    expect(baby.filter((s) => s.key.endsWith('attn-gqa4') || s.key.endsWith('ffn-swiglu352')).every((s) => s.nmse < 1e-10 && Math.abs(s.kl!) <= 1e-6)).toBe(true);
    for (let layer = 0; layer < 5; layer++) {
      const widths = baby.filter((c) => c.layer === layer && c.variant.kind === 'swiglu').sort((a, b) => (b.variant as { intermediate: number }).intermediate - (a.variant as { intermediate: number }).intermediate);
      for (let k = 1; k < widths.length; k++) expect(widths[k].nmse).toBeGreaterThanOrEqual(widths[k - 1].nmse - 1e-3);
    }
  });
});

describe('stories260K block library', async () => {
  const one = await buildLibrary(base('w1', 1));
  const two = await buildLibrary(base('w2', 2));
  const scores = one.library.scores();

  it('has every candidate of the space: 5 attention × 9 FFN variants per layer, fitted independently', () => {
    expect(scores).toHaveLength(5 * (5 + 9));
    expect(one.computed).toBe(70);
  });

  it('scores the parent\'s own sub-blocks as the parent (KL 0, its LM loss; no global pass) with NMSE ≈ 0', () => {
    for (const s of scores.filter((c) => c.key.endsWith('attn-gqa4') || c.key.endsWith('ffn-swiglu172'))) {
      expect([s.kl, s.lmLossDelta], s.key).toEqual([0, 0]);
      expect(s.nmse, s.key).toBeLessThanOrEqual(1e-10);
    }
  });

  it('never lets fitting make validation NMSE worse than the initialisation (beyond noise)', () => {
    for (const s of scores.filter((c) => c.fitted)) expect(s.nmse, s.key).toBeLessThanOrEqual(s.nmseInit + 1e-3);
  });

  it('gives narrower FFNs in a layer higher or equal NMSE than wider ones', () => {
    for (let layer = 0; layer < 5; layer++) {
      const widths = scores
        .filter((c) => c.layer === layer && c.variant.kind === 'swiglu')
        .map((c) => ({ width: (c.variant as { intermediate: number }).intermediate, nmse: c.nmse }))
        .sort((a, b) => b.width - a.width);
      for (let k = 1; k < widths.length; k++) expect(widths[k].nmse, `layer ${layer} width ${widths[k].width}`).toBeGreaterThanOrEqual(widths[k - 1].nmse - 1e-3);
    }
  });

  it('scores no-ops NMSE 1, and removing a sub-block costs KL', () => {
    const s = byKey(scores);
    for (let layer = 0; layer < 5; layer++) {
      for (const key of ['attn-noop', 'ffn-noop']) {
        expect(s.get(`${layer}.${key}`)!.nmse).toBe(1);
        expect(s.get(`${layer}.${key}`)!.kl).toBeGreaterThan(1e-3);
      }
    }
  });

  it('gives the same scores bit for bit with 1 and 2 workers', () => {
    expect(two.library.scores()).toEqual(scores);
    const a = readFileSync(join(one.library.dir, 'candidates', '2.ffn-swiglu86.safetensors'));
    const b = readFileSync(join(two.library.dir, 'candidates', '2.ffn-swiglu86.safetensors'));
    expect(a.equals(b)).toBe(true);
  });

  it('writes scores.json with the manifest: parent, space, data ranges, seed and versions', () => {
    const summary = JSON.parse(readFileSync(join(one.library.dir, 'scores.json'), 'utf8'));
    expect(summary.candidates).toHaveLength(70);
    const m = summary.manifest;
    expect(m.data.calibration.paragraphs[0]).toBe(0);
    expect(m.data.validation.paragraphs[0]).toBe(m.data.calibration.paragraphs[1]);
    expect(m.data.calibration.tokens).toBe(1024);
    expect(m.options.seed).toBe(0);
    expect(Object.keys(m.versions)).toEqual(['tessera', 'onnxruntime', 'node']);
  });

  it('stores the parent\'s validation distribution as it scores (streamed to disk): what a fresh forward computes, and the NLL it reports', async () => {
    const run = one.run;
    const stored = await run.reference(RUNTIME);
    const { validation } = run.data();
    const fresh = await distributionOn(run.config, run.parent().source, validation, 64, RUNTIME);
    expect(maxAbsDiff(stored.logprobs, fresh.logprobs)).toBeLessThanOrEqual(1e-6);
    const parent = scores[0].lmLoss! - scores[0].lmLossDelta!;
    expect(Math.abs(parent - referenceNll(fresh))).toBeLessThanOrEqual(1e-6);
  });

  it('resumes an interrupted run without recomputing finished candidates', async () => {
    const abort = new AbortController();
    const o = { ...base('resume', 2), signal: abort.signal, onProgress: (done: number) => void (done >= 20 && abort.abort()) };
    const first = await buildLibrary(o);
    expect(first.status).toBe('interrupted');
    const finished = first.library.completed;
    expect(finished).toBeGreaterThanOrEqual(20);
    expect(finished).toBeLessThan(70);
    const someKey = first.library.scores()[0].key;
    const file = join(first.library.dir, 'candidates', `${someKey}.safetensors`);
    const before = statSync(file).mtimeMs;
    const reference = join(first.library.dir, 'reference.f32');
    const referenceBefore = statSync(reference).mtimeMs;
    const second = await buildLibrary(base('resume', 2));
    expect(second.resumed).toBe(finished);
    expect(second.computed).toBe(70 - finished);
    expect(statSync(file).mtimeMs).toBe(before);
    // The parent's validation distribution stored by the first run stands: no second pass with logits.
    expect(statSync(reference).mtimeMs).toBe(referenceBefore);
    expect(second.library.scores()).toEqual(scores);
    const third = await buildLibrary(base('resume', 2));
    expect(third.computed).toBe(0);
  });

  it('scores locally in a first pass (no KL but the parent\'s own), then adds the global scores to the same fits: the library of one pass', async () => {
    const first = await buildLibrary({ ...base('local', 2), localOnly: true });
    expect(first.status).toBe('local');
    const local = byKey(first.library.scores());
    const parents = scores.filter((s) => s.key.endsWith('attn-gqa4') || s.key.endsWith('ffn-swiglu172'));
    expect(first.remaining).toBe(70 - parents.length);
    for (const s of scores) {
      const l = local.get(s.key)!;
      expect(l.nmse, s.key).toBe(s.nmse);
      expect(l.kl, s.key).toBe(parents.includes(s) ? 0 : null);
    }
    await expect(solve(first.run, { hardware: join(import.meta.dirname, '../hardware-profiles/cpu-local.json'), metric: 'kl', strategy: 'mip-tabu', solver: 'highs', timeLimitSeconds: 30, solutions: 1, diversity: 2, tabuIterations: 0, samples: 1, seed: 0, runtime: RUNTIME, budget: { speedup: 1.2 } })).rejects.toThrow(/scored locally only \(score --local-only\): solve with --metric nmse/);
    const weights = join(first.library.dir, 'candidates', '2.ffn-swiglu86.safetensors');
    const fitted = statSync(weights).mtimeMs;
    const second = await buildLibrary(base('local', 2));
    expect(second.status).toBe('complete');
    expect(second.computed).toBe(70 - parents.length);
    expect(statSync(weights).mtimeMs).toBe(fitted);
    expect(second.library.scores()).toEqual(scores);
  });

  it('builds a library in parts by layer range; the parts together equal the library built at once', async () => {
    const part = await buildLibrary({ ...base('parts', 2), layers: { first: 1, last: 2 } });
    expect(part.status).toBe('partial');
    const inRange = scores.filter((s) => s.layer === 1 || s.layer === 2).length;
    expect(part.computed).toBe(inRange);
    expect(part.remaining).toBe(70 - inRange);
    expect(part.library.scores().every((s) => s.layer === 1 || s.layer === 2)).toBe(true);
    await expect(buildLibrary({ ...base('parts', 2), layers: { first: 3, last: 9 } })).rejects.toThrow(/--layers 3-9: the parent has layers 0-4/);
    const rest = await buildLibrary(base('parts', 2));
    expect(rest.status).toBe('complete');
    expect(rest.computed).toBe(70 - inRange);
    expect(rest.library.scores()).toEqual(scores);
  });

  it('refuses a library built for other inputs, a foreign directory and a corrupted record', async () => {
    await expect(buildLibrary({ ...base('w1', 1), calibTokens: 2048 })).rejects.toThrow(/w1\/library\/manifest\.json: this library was built for another data/);
    await expect(buildLibrary({ ...base('w1', 1), model: modelDir('babyllama-tok105-1M') })).rejects.toThrow(/this library was built for another parent/);
    const foreign = join(root, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'notes.txt'), 'mine');
    await expect(buildLibrary({ ...base('foreign', 1) })).rejects.toThrow(/foreign: exists and is not a Tessera run directory/);
    writeFileSync(join(two.library.dir, 'candidates', '1.ffn-linear.json'), '{"score": ');
    await expect(buildLibrary(base('w2', 2))).rejects.toThrow(/w2\/library\/candidates\/1\.ffn-linear\.json: corrupted candidate record/);
    rmSync(join(two.library.dir, 'candidates', '1.ffn-linear.json'));
    writeFileSync(join(two.library.dir, 'candidates', '3.attn-gqa2.safetensors'), 'tampered');
    // Weights are checked when read (a real model's library is gigabytes): opening it does not read them.
    const reopened = (await buildLibrary(base('w2', 2))).library;
    expect(() => reopened.weights('3.attn-gqa2')).toThrow(/3\.attn-gqa2\.safetensors: missing or does not match its record/);
  });
});

describe("candidates stored in the parent's dtype, or the one asked for", () => {
  it('stores bfloat16 when asked (a float32 parent) and scores the weights as stored: two passes give the one-pass scores', async () => {
    const layers = { first: 1, last: 2 };
    const once = await buildLibrary({ ...base('bf16-once', 2), layers, weightsDtype: 'BF16' });
    expect(once.run.manifest.options.weightsDtype).toBe('BF16');
    const file = SafetensorsFile.open(join(once.library.dir, 'candidates', '1.attn-gqa2.safetensors'));
    expect([...file.entries.values()].map((e) => e.dtype)).toEqual(['BF16', 'BF16', 'BF16', 'BF16', 'BF16']);
    file.close();
    const f32 = statSync(join(root, 'w1', 'library', 'candidates', '2.ffn-swiglu86.safetensors')).size;
    expect(statSync(join(once.library.dir, 'candidates', '2.ffn-swiglu86.safetensors')).size).toBeLessThan(0.52 * f32);
    // The second pass scores globally what the first pass stored: equal only if the first scored it as stored too.
    await buildLibrary({ ...base('bf16-twice', 2), layers, weightsDtype: 'BF16', localOnly: true });
    const twice = await buildLibrary({ ...base('bf16-twice', 2), layers, weightsDtype: 'BF16' });
    expect(twice.library.scores()).toEqual(once.library.scores());
    await expect(buildLibrary({ ...base('bf16-once', 2), layers })).rejects.toThrow(/bf16-once\/library\/manifest\.json: this library was built for another options/);
  });

  it("defaults to the parent's stored dtype (a bfloat16 checkpoint's library is bfloat16)", () => {
    const run = Run.create(join(root, 'bf16-parent'), { model: modelDir('tiny-random-llama3-bf16-sharded'), space: 'search-spaces/puzzle.json', data: TINYSTORIES, calibTokens: 256, validTokens: 128, seqLen: 32, ranking: 'activation', ridgeGrid: RIDGE_GRID, seed: 0 });
    expect(run.manifest.options.weightsDtype).toBe('BF16');
  });
});

describe('trained blockwise local distillation (--bld-tokens)', async () => {
  const trained = (await buildLibrary({ ...base('bld', 2), bldTokens: 2048 })).library.scores();
  const closed = new Map((await buildLibrary(base('w1', 1))).library.scores().map((s) => [s.key, s]));

  it('trains every derived candidate from its closed-form fit, records both fits, and keeps the better one', () => {
    const withBld = trained.filter((s) => s.bld !== undefined);
    // Every candidate but the parent's own sub-blocks and the no-ops: 5 layers × (3 attention + 7 FFN).
    expect(withBld).toHaveLength(5 * 10);
    for (const s of withBld) {
      const b = s.bld!;
      expect(b.nmseClosedForm, s.key).toBe(closed.get(s.key)!.nmse);
      expect(s.nmse, s.key).toBe(Math.min(b.nmseClosedForm, b.nmseTrained));
      expect(b.kept, s.key).toBe(b.nmseTrained < b.nmseClosedForm ? 'trained' : 'closed-form');
    }
    // Gradient descent improves on the closed-form fits of the blocks that are not linear maps.
    const nonlinear = withBld.filter((s) => s.variant.kind === 'gqa' || s.variant.kind === 'swiglu');
    expect(nonlinear.filter((s) => s.bld!.kept === 'trained').length).toBeGreaterThan(0.8 * nonlinear.length);
  });
});
