import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll } from 'vitest';
import type { ModelConfig } from '../../src/arch/config.js';
import { parseModelConfig } from '../../src/model/config.js';
import { llamaConfigJson } from '../../src/model/random.js';
import { cpuRuntime } from '../../src/onnx/runtime.js';

/** One onnxruntime thread: test files run two at a time on two cores. */
export const RUNTIME = cpuRuntime(1);

export const SHARED = resolve(import.meta.dirname, '../../../shared');
export const SHARED_MODELS = ['stories260K', 'babyllama-tok105-1M'] as const;
export const modelDir = (name: string) => join(SHARED, 'models', name);
export const TINYSTORIES = join(SHARED, 'corpus/tinystories_valid_head.txt');

/** A temporary directory removed after the test file. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function configOf(sizes: Parameters<typeof llamaConfigJson>[0]): ModelConfig {
  return parseModelConfig('test-config.json', llamaConfigJson(sizes));
}
