import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile } from '../../model/json.js';
import { fail } from '../../util/errors.js';
import type { GgufValue } from './format.js';

/** GPT-2's bytes_to_unicode: the character a byte-level vocabulary spells each byte with (printable bytes as themselves, the others shifted past 255), in byte order. */
export function byteLevelAlphabet(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let shifted = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(printable(b) ? b : 256 + shifted++));
}

/** llama.cpp's token types. */
const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6, unused: 5 } as const;

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[]; byte_fallback?: boolean; unk_token?: string | null };
  added_tokens?: { id: number; content: string; special: boolean }[];
  pre_tokenizer?: unknown;
  normalizer?: unknown;
}

/**
 * llama.cpp's name for a byte-level pre-tokenizer (its converter hashes a test text instead): Llama 3's
 * case-insensitive contractions and 1–3 digit groups, SmolLM's single digits before GPT-2's split, or GPT-2's.
 */
function preTokenizer(text: string): string {
  if (text.includes("(?i:'s|'t|'re|'ve|'m|'ll|'d)")) return 'llama-bpe';
  if (text.includes('"individual_digits":true')) return 'smollm';
  return 'gpt-2';
}

/**
 * llama.cpp's vocabulary for a SentencePiece-style tokenizer: its "llama" (SentencePiece BPE) tokenizer spells a
 * character it has no token for as byte tokens (<0x0A> …) and throws, ending the process, when there are none — as
 * it does at load time, looking up the newline. A vocabulary of single characters (no merges, no byte fallback, as
 * character-level models have) segments every text one way, so llama.cpp's Unigram ("t5") tokenizer gives the same
 * ids and maps an unknown character to <unk> instead. One difference remains: it fuses a run of unknown characters
 * into one <unk>, where HF's BPE without `fuse_unk` writes one per character.
 */
function sentencePieceModel(file: string, model: NonNullable<TokenizerJson['model']>, tokens: readonly string[], types: readonly number[], merges: readonly string[]): 'llama' | 't5' {
  if (model.byte_fallback === true || model.vocab!['<0x0A>'] !== undefined) return 'llama';
  const characters = merges.length === 0 && tokens.every((tok, id) => types[id] !== TOKEN_TYPE.normal || [...tok].length === 1);
  if (characters && model.unk_token != null && model.vocab![model.unk_token] !== undefined) return 't5';
  // A newline of its own lets it load (text with a character it has no token for would still end the process).
  if (model.vocab!['\n'] !== undefined) return 'llama';
  return fail(`${file}: has no byte fallback and no token for a newline ("<0x0A>" or "\\n"), and is not a character-level vocabulary with an <unk> token: llama.cpp's tokenizers cannot load it; this tokenizer cannot be written as GGUF`);
}

/**
 * The tokenizer metadata llama.cpp needs, from a HuggingFace tokenizer.json: SentencePiece-style BPE (Llama 2:
 * "▁" for spaces, byte fallback) as llama.cpp's "llama" vocabulary, whose merge order it takes from scores (here
 * minus the rank of the merge that makes each token, so that it merges in BPE's order); byte-level BPE (GPT-2,
 * Llama 3, SmolLM) as its "gpt2" vocabulary with the merges and the pre-tokenizer that splits text as the HF one does.
 */
export function tokenizerMetadata(dir: string, vocabSize: number, configJson: Record<string, unknown>): Map<string, GgufValue> {
  const file = join(dir, 'tokenizer.json');
  if (!existsSync(file)) fail(`${dir}: no tokenizer.json; GGUF export writes the tokenizer from it`);
  const t = readJsonFile(file, 'tokenizer') as TokenizerJson;
  const model = t.model ?? {};
  if (model.type !== 'BPE' || model.vocab === undefined) fail(`${file}: field "model.type" is ${JSON.stringify(model.type)}; GGUF export supports BPE tokenizers (SentencePiece-style or byte-level)`);
  const special = new Map((t.added_tokens ?? []).map((a) => [a.id, a]));
  const tokens = new Array<string>(vocabSize);
  for (const [text, id] of Object.entries(model.vocab)) if (id < vocabSize) tokens[id] = text;
  for (const a of t.added_tokens ?? []) if (a.id < vocabSize) tokens[a.id] = a.content;
  const merges = (model.merges ?? []).map((m) => (typeof m === 'string' ? m : m.join(' ')));
  const text = JSON.stringify(t.pre_tokenizer ?? null);
  const byteLevel = text.includes('"ByteLevel"');
  const types = tokens.map((tok, id) => {
    if (tok === undefined) return TOKEN_TYPE.unused;
    if (special.get(id)?.special) return TOKEN_TYPE.control;
    if (tok === model.unk_token) return TOKEN_TYPE.unknown;
    if (!byteLevel && /^<0x[0-9A-F]{2}>$/.test(tok)) return TOKEN_TYPE.byte;
    return TOKEN_TYPE.normal;
  });
  const list = tokens.map((tok, id) => tok ?? `[PAD${id}]`);
  const out = new Map<string, GgufValue>();
  const configFile = join(dir, 'tokenizer_config.json');
  const config = existsSync(configFile) ? (readJsonFile(configFile, 'tokenizer config') as Record<string, unknown>) : null;
  if (byteLevel) {
    // llama.cpp looks its newline token up when it loads a vocabulary and aborts the process when there is none.
    const newline = byteLevelAlphabet()['\n'.charCodeAt(0)];
    if (model.vocab[newline] === undefined) fail(`${file}: has no token for a newline (${JSON.stringify(newline)}), which llama.cpp's byte-level vocabulary needs to load; this tokenizer cannot be written as GGUF`);
    out.set('tokenizer.ggml.model', { type: 'string', value: 'gpt2' });
    out.set('tokenizer.ggml.pre', { type: 'string', value: preTokenizer(text) });
    out.set('tokenizer.ggml.tokens', { type: 'array', of: 'string', value: list });
    out.set('tokenizer.ggml.token_type', { type: 'array', of: 'i32', value: types });
    out.set('tokenizer.ggml.merges', { type: 'array', of: 'string', value: merges });
  } else {
    out.set('tokenizer.ggml.model', { type: 'string', value: sentencePieceModel(file, model, list, types, merges) });
    const rank = new Map(merges.map((m, r) => [m.replace(' ', ''), r]));
    const scores = list.map((tok, id) => (types[id] === TOKEN_TYPE.normal ? -(rank.get(tok) ?? (tok.length > 1 ? merges.length + id : 0)) : types[id] === TOKEN_TYPE.unused ? -10000 : 0));
    out.set('tokenizer.ggml.pre', { type: 'string', value: 'default' });
    out.set('tokenizer.ggml.tokens', { type: 'array', of: 'string', value: list });
    out.set('tokenizer.ggml.scores', { type: 'array', of: 'f32', value: scores });
    out.set('tokenizer.ggml.token_type', { type: 'array', of: 'i32', value: types });
    out.set('tokenizer.ggml.add_space_prefix', { type: 'bool', value: JSON.stringify(t.normalizer ?? null).includes('"Prepend"') });
  }
  const idOf = (name: 'bos' | 'eos' | 'unk' | 'pad'): number | null => {
    const fromConfig = configJson[`${name}_token_id`];
    if (typeof fromConfig === 'number') return fromConfig;
    if (Array.isArray(fromConfig) && typeof fromConfig[0] === 'number') return fromConfig[0];
    const content = config?.[`${name}_token`];
    const textOf = typeof content === 'string' ? content : (content as { content?: string } | null)?.content;
    const id = list.indexOf(textOf ?? (name === 'unk' ? (model.unk_token ?? '') : ''));
    return id >= 0 ? id : null;
  };
  const keys = { bos: 'bos_token_id', eos: 'eos_token_id', unk: 'unknown_token_id', pad: 'padding_token_id' } as const;
  for (const name of ['bos', 'eos', 'unk', 'pad'] as const) {
    const id = idOf(name);
    if (id !== null) out.set(`tokenizer.ggml.${keys[name]}`, { type: 'u32', value: id });
  }
  for (const flag of ['add_bos_token', 'add_eos_token'] as const) {
    if (typeof config?.[flag] === 'boolean') out.set(`tokenizer.ggml.${flag}`, { type: 'bool', value: config[flag] as boolean });
  }
  return out;
}
