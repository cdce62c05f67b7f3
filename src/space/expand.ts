import { parentArchitecture, type ModelConfig } from '../arch/config.js';
import type { SpaceField } from '../arch/variants/kind.js';
import { kinds, removesSubBlock, variantKey } from '../arch/variants/registry.js';
import type { BlockConfig, SubBlock, VariantOf } from '../arch/variant.js';
import { FieldReader, isObject, readJsonFile, type JsonObject } from '../model/json.js';
import { fail } from '../util/errors.js';
import type { LayerChoices, SearchSpace } from './types.js';

/**
 * Search-space files (`search-spaces/*.json`, schema in search-space.schema.json):
 *
 *   attention: { kvHeads?: { values?: [..], fractions?: [..], headsInGroup?: [..], onlyWhereValid?: bool }, linear?, noop? }
 *   ffn:       { widths?: { values?: [..], fractions?: [..], roundTo?: n }, linear?, noop? }
 *   noopTogether?: bool     — attention and FFN are no-op only together (whole-layer dropping)
 *   overrides?: [{ layers: [i, -1, ...] | { from, to }, pin?: true, attention?: {...}, ffn?: {...} }]
 *
 * A pinned layer keeps the parent's block. Fractions are of the parent's own size (KV heads or FFN width).
 */
export function loadSearchSpace(path: string, config: ModelConfig): SearchSpace {
  const raw = readJsonFile(path, 'search space');
  if (!isObject(raw)) fail(`${path}: expected a JSON object`);
  return expandSearchSpace(path, raw, config);
}

export function expandSearchSpace(file: string, raw: JsonObject, config: ModelConfig): SearchSpace {
  const top: FieldReader = new FieldReader(file, raw);
  top.onlyKeys(['$schema', 'name', 'description', 'attention', 'ffn', 'noopTogether', 'overrides']);
  const name = top.string('name') ?? file.replace(/^.*\//, '').replace(/\.json$/, '');
  top.string('description');
  const noopTogether = top.flag('noopTogether', false);
  const L = config.numLayers;
  const perLayer: { attention: JsonObject | null; ffn: JsonObject | null; attentionField: string; ffnField: string; pinned: boolean }[] =
    Array.from({ length: L }, () => ({ attention: objectOrNull(top, 'attention'), ffn: objectOrNull(top, 'ffn'), attentionField: 'attention', ffnField: 'ffn', pinned: false }));

  const overrides = raw.overrides ?? [];
  if (!Array.isArray(overrides)) top.problem('overrides', 'a list of { layers, pin | attention | ffn } objects');
  overrides.forEach((o, k) => {
    const field = `overrides[${k}]`;
    if (!isObject(o)) fail(`${file}: field "${field}" is ${JSON.stringify(o)}; expected an object`);
    const r = new FieldReader(file, o, `${field}.`);
    r.onlyKeys(['layers', 'pin', 'attention', 'ffn', 'comment']);
    for (const layer of layerSelection(file, `${field}.layers`, o.layers, L)) {
      const target = perLayer[layer];
      if (r.flag('pin', false)) target.pinned = true;
      if (o.attention !== undefined) Object.assign(target, { attention: objectOrNull(r, 'attention'), attentionField: `${field}.attention` });
      if (o.ffn !== undefined) Object.assign(target, { ffn: objectOrNull(r, 'ffn'), ffnField: `${field}.ffn` });
    }
  });

  const layers = perLayer.map((spec, i): LayerChoices => {
    const parentBlock = parentArchitecture(config)[i];
    if (spec.pinned) return { attention: [parentBlock.attention], ffn: [parentBlock.ffn], blocks: [parentBlock] };
    const attention = subBlockChoices('attention', spec.attention, config, { file, field: spec.attentionField, layer: i });
    const ffn = subBlockChoices('ffn', spec.ffn, config, { file, field: spec.ffnField, layer: i });
    const blocks: BlockConfig[] = [];
    for (const a of attention) {
      for (const f of ffn) {
        if (noopTogether && removesSubBlock('attention', a) !== removesSubBlock('ffn', f)) continue;
        blocks.push({ attention: a, ffn: f });
      }
    }
    if (blocks.length === 0) fail(`${file}: layer ${i} has no allowed (attention, FFN) pair; with noopTogether both sub-blocks need a no-op or neither`);
    return { attention, ffn, blocks };
  });
  return { name, file, layers };
}

function objectOrNull(r: FieldReader, key: string): JsonObject | null {
  return r.object(key)?.obj ?? null;
}

/** Layer indices from a list (negative counts from the end) or an inclusive { from, to } range. */
function layerSelection(file: string, field: string, sel: unknown, L: number): number[] {
  const check = (i: unknown): number => {
    if (typeof i !== 'number' || !Number.isInteger(i) || i < -L || i >= L) fail(`${file}: field "${field}" has layer ${JSON.stringify(i)}; the model has layers 0..${L - 1} (negative counts from the end)`);
    return i < 0 ? L + i : i;
  };
  if (Array.isArray(sel)) {
    if (sel.length === 0) fail(`${file}: field "${field}" is []; expected at least one layer (an override of no layer does nothing)`);
    return sel.map(check);
  }
  if (isObject(sel)) {
    const from = check(sel.from);
    const to = check(sel.to);
    if (to < from) fail(`${file}: field "${field}" runs from ${from} to ${to}; expected from ≤ to`);
    return Array.from({ length: to - from + 1 }, (_, k) => from + k);
  }
  fail(`${file}: field "${field}" is ${JSON.stringify(sel)}; expected a list of layer indices or { "from": i, "to": j }`);
}

/** A layer's options for one sub-block: each kind reads its own keys of the section; no section keeps the parent's. */
function subBlockChoices<S extends SubBlock>(sub: S, section: JsonObject | null, config: ModelConfig, at: SpaceField): VariantOf[S][] {
  if (section === null) return [parentArchitecture(config)[at.layer][sub]];
  const r = new FieldReader(at.file, section, `${at.field}.`);
  const all = kinds(sub);
  r.onlyKeys(all.flatMap((k) => k.spaceKeys));
  const out = all.flatMap((k) => k.fromSpace(r, config, at)) as VariantOf[S][];
  if (out.length === 0) fail(`${at.file}: field "${at.field}" allows no ${sub === 'attention' ? 'attention' : 'FFN'} variant for layer ${at.layer}`);
  const seen = new Set<string>();
  return out.filter((v) => (seen.has(variantKey(sub, v)) ? false : (seen.add(variantKey(sub, v)), true)));
}
