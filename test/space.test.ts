import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { attentionKey, blockKey, ffnKey } from '../src/arch/variants/registry.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { expandSearchSpace, loadSearchSpace } from '../src/space/expand.js';
import { configOf, modelDir } from './support/fixtures.js';

const SPACES = resolve(import.meta.dirname, '../search-spaces');
const stories = loadCheckpoint(modelDir('stories260K')).config; // 8 heads, 4 KV heads, FFN 172
const llama70b = configOf({ hidden: 8192, layers: 80, heads: 64, kvHeads: 8, intermediate: 28672, vocab: 128256 });
const keys = (xs: readonly { kind: string }[], key: (x: never) => string) => xs.map((x) => key(x as never));

describe('shipped search spaces', () => {
  it('all validate against search-space.schema.json', () => {
    const ajv = new Ajv2020.default({ allErrors: true });
    const validate = ajv.compile(JSON.parse(readFileSync(join(SPACES, 'search-space.schema.json'), 'utf8')));
    const files = readdirSync(SPACES).filter((f) => f.endsWith('.json') && !f.includes('schema'));
    expect(files.sort()).toEqual(['depth.json', 'kv-heads.json', 'puzzle.json', 'width.json']);
    for (const f of files) expect(validate(JSON.parse(readFileSync(join(SPACES, f), 'utf8'))), `${f}: ${ajv.errorsText(validate.errors)}`).toBe(true);
  });

  it('puzzle.json gives the Nemotron-51B choices on a Llama-3.1-70B parent', () => {
    const space = loadSearchSpace(join(SPACES, 'puzzle.json'), llama70b);
    expect(space.layers).toHaveLength(80);
    const l = space.layers[17];
    expect(keys(l.attention, attentionKey)).toEqual(['attn-gqa8', 'attn-gqa4', 'attn-gqa2', 'attn-gqa1', 'attn-linear', 'attn-noop']);
    expect(keys(l.ffn, ffnKey)).toEqual(['ffn-swiglu28672', 'ffn-swiglu25088', 'ffn-swiglu21504', 'ffn-swiglu14336', 'ffn-swiglu7168', 'ffn-swiglu5734', 'ffn-swiglu2867', 'ffn-linear', 'ffn-noop']);
    expect(l.blocks).toHaveLength(6 * 9);
  });

  it('puzzle.json skips KV fractions that do not divide on the shared model (4 KV heads: 1/8 → 0.5)', () => {
    const l = loadSearchSpace(join(SPACES, 'puzzle.json'), stories).layers[0];
    expect(keys(l.attention, attentionKey)).toEqual(['attn-gqa4', 'attn-gqa2', 'attn-gqa1', 'attn-linear', 'attn-noop']);
    expect(keys(l.ffn, ffnKey)).toEqual(['ffn-swiglu172', 'ffn-swiglu151', 'ffn-swiglu129', 'ffn-swiglu86', 'ffn-swiglu43', 'ffn-swiglu34', 'ffn-swiglu17', 'ffn-linear', 'ffn-noop']);
  });

  it('depth.json drops whole layers only', () => {
    const l = loadSearchSpace(join(SPACES, 'depth.json'), stories).layers[2];
    expect(l.blocks.map(blockKey)).toEqual(['attn-gqa4.ffn-swiglu172', 'attn-noop.ffn-noop']);
  });

  it('width.json and kv-heads.json keep the other sub-block at the parent', () => {
    const w = loadSearchSpace(join(SPACES, 'width.json'), stories).layers[0];
    expect(keys(w.attention, attentionKey)).toEqual(['attn-gqa4']);
    expect(w.ffn).toHaveLength(7);
    const kv = loadSearchSpace(join(SPACES, 'kv-heads.json'), llama70b).layers[0];
    expect(keys(kv.attention, attentionKey)).toEqual(['attn-gqa8', 'attn-gqa4', 'attn-gqa2', 'attn-gqa1']);
    expect(keys(kv.ffn, ffnKey)).toEqual(['ffn-swiglu28672']);
  });
});

describe('search-space files', () => {
  const expand = (raw: Record<string, unknown>) => expandSearchSpace('my-space.json', raw, stories);

  it('pin layers, override sub-blocks per layer, count from the end, and round widths', () => {
    const space = expand({
      ffn: { widths: { fractions: [1, 0.5], roundTo: 16 }, noop: true },
      overrides: [
        { layers: [0, -1], pin: true },
        { layers: { from: 2, to: 3 }, attention: { kvHeads: { headsInGroup: [8] } } },
      ],
    });
    expect(space.name).toBe('my-space');
    expect(space.layers[0].blocks.map(blockKey)).toEqual(['attn-gqa4.ffn-swiglu172']);
    expect(space.layers[4].blocks.map(blockKey)).toEqual(['attn-gqa4.ffn-swiglu172']);
    expect(space.layers[1].blocks.map(blockKey)).toEqual(['attn-gqa4.ffn-swiglu172', 'attn-gqa4.ffn-swiglu80', 'attn-gqa4.ffn-noop']);
    expect(space.layers[3].blocks.map(blockKey)).toEqual(['attn-gqa1.ffn-swiglu172', 'attn-gqa1.ffn-swiglu80', 'attn-gqa1.ffn-noop']);
  });

  it('name the file, field and layer of an impossible value', () => {
    expect(() => expand({ attention: { kvHeads: { values: [3] } } })).toThrow(
      /my-space\.json: field "attention\.kvHeads\.values" \(layer 0\): 3 gives 3 KV heads; expected a divisor of both the 8 query heads and the parent's 4 KV heads/,
    );
    expect(() => expand({ attention: { kvHeads: { fractions: [0.125] } } })).toThrow(/field "attention\.kvHeads\.fractions" \(layer 0\): fraction 0\.125 of 4 gives 0\.5 KV heads/);
    expect(() => expand({ overrides: [{ layers: [3], ffn: { widths: { values: [200] } } }] })).toThrow(
      /my-space\.json: field "overrides\[0\]\.ffn\.widths\.values" \(layer 3\): 200 gives FFN width 200; expected an integer from 1 to the parent's 172/,
    );
    expect(() => expand({ ffn: { widths: { fractions: [0.5], roundTo: 256 } } })).toThrow(
      /field "ffn\.widths\.fractions" \(layer 0\): fraction 0\.5 of 172 rounded to a multiple of 256 gives FFN width 0; expected an integer from 1/,
    );
  });

  it('refuse unknown fields and layers outside the model', () => {
    expect(() => expand({ atention: {} })).toThrow(/my-space\.json: unknown field "atention"; expected one of/);
    expect(() => expand({ ffn: { widths: { fraction: [1] } } })).toThrow(/unknown field "ffn\.widths\.fraction"/);
    expect(() => expand({ overrides: [{ layers: [5], pin: true }] })).toThrow(/field "overrides\[0\]\.layers" has layer 5; the model has layers 0\.\.4/);
    expect(() => expand({ attention: { noop: false } })).toThrow(/field "attention" allows no attention variant for layer 0/);
    // Values the schema's types allow but that mean nothing.
    expect(() => expand({ overrides: [{ layers: [], pin: true }] })).toThrow(/field "overrides\[0\]\.layers" is \[\]; expected at least one layer/);
    expect(() => expand({ description: 5 })).toThrow(/my-space\.json: field "description" is 5; expected a string/);
    expect(() => expand({ ffn: { noop: null } })).toThrow(/field "ffn\.noop" is null; expected true or false/);
  });
});
