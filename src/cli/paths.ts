import { resolve } from 'node:path';
import { PROJECT_ROOT } from '../util/project.js';

export { PROJECT_ROOT };

/** `../shared` beside the project root: real models and text that no package ships. */
export const SHARED_DIR = resolve(PROJECT_ROOT, '../shared');

export const DEFAULT_MODEL = resolve(SHARED_DIR, 'models/stories260K');
export const DEFAULT_TEXT = resolve(SHARED_DIR, 'corpus/tinystories_valid_head.txt');
export const DEFAULT_SPACE = resolve(PROJECT_ROOT, 'search-spaces/puzzle.json');
export const DEFAULT_HARDWARE = resolve(PROJECT_ROOT, 'hardware-profiles/cpu-local.json');
