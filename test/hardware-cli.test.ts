import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toDeciBlockConfigs } from '../src/arch/decilm.js';
import type { Architecture } from '../src/arch/variant.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { loadHardwareProfile } from '../src/hardware/load.js';
import { measureModel } from '../src/hardware/measure.js';
import { CALIBRATION_MODELS } from '../src/hardware/profile.js';
import { calibrationFit } from '../src/hardware/calibrate.js';
import { parentArchitecture } from '../src/arch/config.js';
import { modelDir, RUNTIME, tempDir } from './support/fixtures.js';

const ROOT = resolve(import.meta.dirname, '..');
const tessera = (...args: string[]) => {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin/tessera.js'), ...args], { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};
const dir = tempDir();
const stories = modelDir('stories260K');

describe('tessera cost', () => {
  it('prints the parent\'s time, throughput and memory per scenario', () => {
    const r = tessera('cost', stories, '--hardware', 'hardware-profiles/h100-sxm.json');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('roofline costs from hardware-profiles/h100-sxm.json');
    expect(r.stdout).toMatch(/^chat-batch\s+64\s+1024\+256\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+507\.88 KiB\s+49\.96 MiB\s+yes$/m);
    expect(r.stdout).toMatch(/note: interactive, chat-batch, long-prompt exceed the model's 512 positions/);
  });

  it('prices a child from a block_configs file: dropping layers is cheaper', () => {
    const ck = loadCheckpoint(stories);
    const child: Architecture = ck.architecture.map((b, i) => (i % 2 ? { attention: { kind: 'noop' }, ffn: { kind: 'noop' } } : b));
    const spec = join(dir, 'child.json');
    writeFileSync(spec, JSON.stringify({ block_configs: toDeciBlockConfigs(ck.config, child) }));
    const total = (out: string) => Number(/^single-prompt(?:\s+\S+){4}\s+([\d.]+)/m.exec(out)![1]);
    const parent = tessera('cost', stories);
    const smaller = tessera('cost', stories, '--arch', spec);
    expect(smaller.stdout).toContain('(169,152 params)');
    expect(total(smaller.stdout)).toBeLessThan(total(parent.stdout));
  });

  it('names a bad --arch file and field', () => {
    const spec = join(dir, 'bad.json');
    writeFileSync(spec, JSON.stringify({ block_configs: [] }));
    const r = tessera('cost', stories, '--arch', spec);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^tessera: .*bad\.json: field "block_configs" has 0 entries; num_hidden_layers is 5\n$/);
  });
});

describe('tessera profile', () => {
  it('measures every variant of a space per scenario and writes a profile that cost then uses', () => {
    const out = join(dir, 'measured.json');
    const r = tessera('profile', '--model', stories, '--space', 'search-spaces/depth.json', '--out', out, '--repeats', '2', '--min-seconds', '0', '--threads', '1');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('measured 2 attention and 2 FFN variants in 2 scenarios');
    const p = loadHardwareProfile(out);
    expect(p.measured!.model.hiddenSize).toBe(64);
    for (const s of p.workload.scenarios) {
      const t = p.measured!.scenarios[s.name];
      expect(Object.keys(t).sort()).toEqual(['attn-gqa4', 'attn-noop', 'ffn-noop', 'ffn-swiglu172', 'rest']);
      expect(t['attn-gqa4'].prefillSeconds).toBeGreaterThan(0);
      expect(t['attn-noop']).toEqual({ prefillSeconds: 0, decodeSeconds: 0 });
      // Calibrated on whole models: the parent and random architectures, the sums of their blocks against their times,
      // each said to be made of its variants, with the refinement chosen by leave-one-out and its error.
      const c = p.measured!.calibration![s.name];
      expect(c.points).toHaveLength(CALIBRATION_MODELS);
      for (const pt of c.points) expect(Object.values(pt.counts!).reduce((a, b) => a + b, 0)).toBe(1 + 2 * 5);
      expect(c.refinement!.error).toBeGreaterThan(0);
      // The times as measured are kept beside the fit, and the fit is what they give.
      expect(Object.keys(c.raw!).sort()).toEqual(Object.keys(t).sort());
      expect(calibrationFit(c.raw!, c.points).times).toEqual(t);
      for (const pt of c.points) expect(pt.measured.prefillSeconds).toBeGreaterThan(0);
      expect(c.prefill.slope).toBeGreaterThan(0);
      expect(c.decode.slope).toBeGreaterThan(0);
    }
    const c = tessera('cost', stories, '--hardware', out);
    expect(c.code).toBe(0);
    expect(c.stdout).toContain('measured costs from');
    const other = tessera('cost', modelDir('babyllama-tok105-1M'), '--hardware', out);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/measured for a model of hidden 64/);
    // Calibrated again from the timings it keeps, by the same fits: the same bytes.
    const again = join(dir, 'recalibrated.json');
    const re = tessera('recalibrate', out, '--out', again);
    expect(re.code, re.stderr).toBe(0);
    expect(re.stdout).toMatch(/^single-prompt: 10 of 12 whole models \(those between the smallest and the largest, each left out in turn\) predicted within [\d.]+% by a /m);
    expect(readFileSync(again, 'utf8')).toBe(readFileSync(out, 'utf8'));
    expect(tessera('recalibrate', 'hardware-profiles/cpu-local.json').stderr).toMatch(/^tessera: hardware-profiles\/cpu-local\.json: has no "measured" section/);
  });
});

describe('whole-model measurement', () => {
  it('times a prefill and the decode steps of a scenario', async () => {
    const ck = loadCheckpoint(stories);
    const t = await measureModel(ck.config, ck.weights, parentArchitecture(ck.config), { name: 's', prefillTokens: 8, generatedTokens: 4, batch: 2 }, { runtime: RUNTIME, repeats: 1, warmup: 0 });
    expect(t.prefillSeconds).toBeGreaterThan(0);
    expect(t.decodeSeconds).toBeGreaterThan(0);
  });
});
