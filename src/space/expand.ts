import type { ModelConfig } from '../arch/config.js';
import { attentionKey, ffnKey, type AttentionVariant, type BlockConfig, type FfnVariant } from '../arch/types.js';
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
  checkKeys(top, ['$schema', 'name', 'description', 'attention', 'ffn', 'noopTogether', 'overrides']);
  const name = top.string('name') ?? file.replace(/^.*\//, '').replace(/\.json$/, '');
  const noopTogether = top.boolean('noopTogether', false);
  const L = config.numLayers;
  const perLayer: { attention: JsonObject | null; ffn: JsonObject | null; attentionField: string; ffnField: string; pinned: boolean }[] =
    Array.from({ length: L }, () => ({ attention: objectOrNull(top, 'attention'), ffn: objectOrNull(top, 'ffn'), attentionField: 'attention', ffnField: 'ffn', pinned: false }));

  const overrides = raw.overrides ?? [];
  if (!Array.isArray(overrides)) top.problem('overrides', 'a list of { layers, pin | attention | ffn } objects');
  overrides.forEach((o, k) => {
    const field = `overrides[${k}]`;
    if (!isObject(o)) fail(`${file}: field "${field}" is ${JSON.stringify(o)}; expected an object`);
    const r = new FieldReader(file, o, `${field}.`);
    checkKeys(r, ['layers', 'pin', 'attention', 'ffn', 'comment']);
    for (const layer of layerSelection(file, `${field}.layers`, o.layers, L)) {
      const target = perLayer[layer];
      if (r.boolean('pin', false)) target.pinned = true;
      if (o.attention !== undefined) Object.assign(target, { attention: objectOrNull(r, 'attention'), attentionField: `${field}.attention` });
      if (o.ffn !== undefined) Object.assign(target, { ffn: objectOrNull(r, 'ffn'), ffnField: `${field}.ffn` });
    }
  });

  const layers = perLayer.map((spec, i): LayerChoices => {
    const parentBlock: BlockConfig = { attention: { kind: 'gqa', kvHeads: config.numKvHeads }, ffn: { kind: 'swiglu', intermediate: config.intermediateSize } };
    if (spec.pinned) return { attention: [parentBlock.attention], ffn: [parentBlock.ffn], blocks: [parentBlock] };
    const attention = attentionChoices(file, spec.attentionField, spec.attention, config, i);
    const ffn = ffnChoices(file, spec.ffnField, spec.ffn, config, i);
    const blocks: BlockConfig[] = [];
    for (const a of attention) {
      for (const f of ffn) {
        if (noopTogether && (a.kind === 'noop') !== (f.kind === 'noop')) continue;
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

function checkKeys(r: FieldReader, allowed: string[]): void {
  for (const key of Object.keys(r.obj)) {
    if (!allowed.includes(key)) fail(`${r.file}: unknown field "${r.prefix}${key}"; expected one of ${allowed.join(', ')}`);
  }
}

/** Layer indices from a list (negative counts from the end) or an inclusive { from, to } range. */
function layerSelection(file: string, field: string, sel: unknown, L: number): number[] {
  const check = (i: unknown): number => {
    if (typeof i !== 'number' || !Number.isInteger(i) || i < -L || i >= L) fail(`${file}: field "${field}" has layer ${JSON.stringify(i)}; the model has layers 0..${L - 1} (negative counts from the end)`);
    return i < 0 ? L + i : i;
  };
  if (Array.isArray(sel)) return sel.map(check);
  if (isObject(sel)) {
    const from = check(sel.from);
    const to = check(sel.to);
    if (to < from) fail(`${file}: field "${field}" runs from ${from} to ${to}; expected from ≤ to`);
    return Array.from({ length: to - from + 1 }, (_, k) => from + k);
  }
  fail(`${file}: field "${field}" is ${JSON.stringify(sel)}; expected a list of layer indices or { "from": i, "to": j }`);
}

function numberList(file: string, field: string, v: unknown, what: string): number[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
    fail(`${file}: field "${field}" is ${JSON.stringify(v)}; expected a non-empty list of ${what}`);
  }
  return v as number[];
}

function dedupe<T>(items: T[], key: (t: T) => string): T[] {
  const seen = new Set<string>();
  return items.filter((t) => (seen.has(key(t)) ? false : (seen.add(key(t)), true)));
}

function attentionChoices(file: string, field: string, spec: JsonObject | null, config: ModelConfig, layer: number): AttentionVariant[] {
  if (spec === null) return [{ kind: 'gqa', kvHeads: config.numKvHeads }];
  const r = new FieldReader(file, spec, `${field}.`);
  checkKeys(r, ['kvHeads', 'linear', 'noop']);
  const out: AttentionVariant[] = [];
  const kv = r.object('kvHeads');
  if (kv !== null) {
    checkKeys(kv, ['values', 'fractions', 'headsInGroup', 'onlyWhereValid']);
    const lenient = kv.boolean('onlyWhereValid', false);
    const H = config.numHeads;
    const where = (sub: string) => `${file}: field "${field}.kvHeads.${sub}" (layer ${layer})`;
    const add = (count: number, sub: string, source: string) => {
      // Fewer K/V heads are built by mean-pooling groups of the parent's, so the count must divide those too.
      const valid = Number.isInteger(count) && count >= 1 && H % count === 0 && config.numKvHeads % count === 0;
      if (valid) out.push({ kind: 'gqa', kvHeads: count });
      else if (!lenient) {
        fail(`${where(sub)}: ${source} gives ${count} KV heads; expected a divisor of both the ${H} query heads and the parent's ${config.numKvHeads} KV heads (or set onlyWhereValid)`);
      }
    };
    if (kv.obj.values !== undefined) for (const v of numberList(file, `${field}.kvHeads.values`, kv.obj.values, 'KV-head counts')) add(v, 'values', `${v}`);
    if (kv.obj.fractions !== undefined) for (const f of numberList(file, `${field}.kvHeads.fractions`, kv.obj.fractions, 'fractions of the parent\'s KV heads')) add(config.numKvHeads * f, 'fractions', `fraction ${f} of ${config.numKvHeads}`);
    if (kv.obj.headsInGroup !== undefined) for (const g of numberList(file, `${field}.kvHeads.headsInGroup`, kv.obj.headsInGroup, 'n_heads_in_group values')) add(H / g, 'headsInGroup', `n_heads_in_group ${g}`);
  }
  if (r.boolean('linear', false)) out.push({ kind: 'linear' });
  if (r.boolean('noop', false)) out.push({ kind: 'noop' });
  if (out.length === 0) fail(`${file}: field "${field}" allows no attention variant for layer ${layer}`);
  return dedupe(out, attentionKey);
}

function ffnChoices(file: string, field: string, spec: JsonObject | null, config: ModelConfig, layer: number): FfnVariant[] {
  const M = config.intermediateSize;
  if (spec === null) return [{ kind: 'swiglu', intermediate: M }];
  const r = new FieldReader(file, spec, `${field}.`);
  checkKeys(r, ['widths', 'linear', 'noop']);
  const out: FfnVariant[] = [];
  const w = r.object('widths');
  if (w !== null) {
    checkKeys(w, ['values', 'fractions', 'roundTo']);
    const roundTo = w.has('roundTo') ? w.positiveInt('roundTo') : 1;
    const add = (width: number, sub: string, source: string) => {
      if (!Number.isInteger(width) || width < 1 || width > M) {
        fail(`${file}: field "${field}.widths.${sub}" (layer ${layer}): ${source} gives FFN width ${width}; expected an integer from 1 to the parent's ${M}`);
      }
      out.push({ kind: 'swiglu', intermediate: width });
    };
    if (w.obj.values !== undefined) for (const v of numberList(file, `${field}.widths.values`, w.obj.values, 'FFN widths')) add(v, 'values', `${v}`);
    if (w.obj.fractions !== undefined) {
      for (const f of numberList(file, `${field}.widths.fractions`, w.obj.fractions, 'fractions of the parent\'s FFN width')) {
        // The parent's own width stays exact even when it is not a multiple of roundTo.
        const width = f === 1 ? M : Math.round((f * M) / roundTo) * roundTo;
        add(width, 'fractions', `fraction ${f} of ${M}${roundTo > 1 ? ` rounded to a multiple of ${roundTo}` : ''}`);
      }
    }
  }
  if (r.boolean('linear', false)) out.push({ kind: 'linear' });
  if (r.boolean('noop', false)) out.push({ kind: 'noop' });
  if (out.length === 0) fail(`${file}: field "${field}" allows no FFN variant for layer ${layer}`);
  return dedupe(out, ffnKey);
}
