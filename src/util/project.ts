import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root, whether running from src/ (tsx, vitest) or dist/ (the built CLI). */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export const TESSERA_VERSION: string = JSON.parse(readFileSync(resolve(PROJECT_ROOT, 'package.json'), 'utf8')).version;

/** `../shared` beside the project root: real models and text that no package ships. */
export const SHARED_DIR = resolve(PROJECT_ROOT, '../shared');

/** What every command uses when not told otherwise: the default model, text, search space and hardware profile. */
export const DEFAULT_MODEL = resolve(SHARED_DIR, 'models/stories260K');
export const DEFAULT_TEXT = resolve(SHARED_DIR, 'corpus/tinystories_valid_head.txt');
export const DEFAULT_SPACE = resolve(PROJECT_ROOT, 'search-spaces/puzzle.json');
export const DEFAULT_HARDWARE = resolve(PROJECT_ROOT, 'hardware-profiles/cpu-local.json');
