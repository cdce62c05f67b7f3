import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { fail } from '../util/errors.js';
import { isObject, readJsonFile } from './json.js';

/** Text ⇄ token ids for a checkpoint, from its tokenizer.json (offline, via @huggingface/tokenizers). */
export interface TextTokenizer {
  /** Token ids with the model's special tokens (BOS for Llama) unless `special` is false. */
  encode(text: string, special?: boolean): number[];
  decode(ids: readonly number[]): string;
}

export function loadTokenizer(dir: string): TextTokenizer {
  const file = join(dir, 'tokenizer.json');
  const json = readJsonFile(file, 'tokenizer');
  if (!isObject(json) || !isObject(json.model)) fail(`${file}: field "model" is missing; expected a HuggingFace tokenizer.json`);
  const configFile = join(dir, 'tokenizer_config.json');
  const config = existsSync(configFile) ? readJsonFile(configFile, 'tokenizer config') : {};
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json as object, config as object);
  } catch (e) {
    fail(`${file}: cannot build the tokenizer (${(e as Error).message})`);
  }
  return {
    encode: (text, special = true) => tok.encode(text, { add_special_tokens: special }).ids,
    decode: (ids) => tok.decode([...ids], { skip_special_tokens: true }),
  };
}
