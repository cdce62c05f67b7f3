import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fromDeciBlockConfigs, toDeciBlockConfigs } from '../src/arch/decilm.js';
import { kinds, variantKey } from '../src/arch/variants/registry.js';
import { SUB_BLOCKS } from '../src/arch/variant.js';
import { randomWeights } from '../src/model/random.js';
import { numel } from '../src/util/tensor.js';
import { loadSearchSpace } from '../src/space/expand.js';
import { Rng } from '../src/util/rng.js';
import { configOf } from './support/fixtures.js';

// Every kind must keep its own promises; a new kind is checked here without a line of this file changing.
const ROOT = resolve(import.meta.dirname, '..');
const config = configOf({ hidden: 16, layers: 2, heads: 4, kvHeads: 4, headDim: 4, intermediate: 24, vocab: 11 });
const space = loadSearchSpace(join(ROOT, 'search-spaces/puzzle.json'), config);
const schema = JSON.parse(readFileSync(join(ROOT, 'search-spaces/search-space.schema.json'), 'utf8'));

describe('the variant-kind registry', () => {
  for (const sub of SUB_BLOCKS) {
    const variants = space.layers[0][sub];

    it(`${sub}: puzzle.json offers every registered kind, each under a distinct key`, () => {
      expect(new Set(variants.map((v) => v.kind))).toEqual(new Set(kinds(sub).map((k) => k.kind)));
      expect(new Set(variants.map((v) => variantKey(sub, v))).size).toBe(variants.length);
    });

    it(`${sub}: each kind's parameter count is the size of the tensors it declares, and random weights have those shapes`, () => {
      const arch = variants.map((v) => ({ ...space.layers[0].blocks[0], [sub]: v }));
      const weights = randomWeights({ ...config, numLayers: arch.length }, arch, new Rng(1));
      variants.forEach((v, i) => {
        const kind = kinds(sub).find((k) => k.kind === v.kind)!;
        const declared = kind.tensors(config, v as never);
        expect(kind.params(config, v as never), variantKey(sub, v)).toBe(declared.reduce((s, t) => s + numel(t.shape), 0));
        expect(Object.keys(weights.layers[i][sub].tensors)).toEqual(declared.map((t) => t.role));
      });
    });

    it(`${sub}: each kind's search-space keys are in the schema`, () => {
      const properties = Object.keys(schema.$defs[sub].properties);
      for (const k of kinds(sub)) for (const key of k.spaceKeys) expect(properties, `${k.kind}.${key}`).toContain(key);
    });
  }

  it('round-trips every variant through DeciLM block_configs', () => {
    const arch = space.layers[0].blocks;
    const c = { ...config, numLayers: arch.length };
    expect(fromDeciBlockConfigs('config.json', c, JSON.parse(JSON.stringify(toDeciBlockConfigs(c, arch))))).toEqual(arch);
  });
});
