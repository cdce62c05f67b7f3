import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { modelDir, TINYSTORIES } from './support/fixtures.js';

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin/tessera.js');

/** Runs the built CLI as a user would (`npm test` builds it first). */
function tessera(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
});

describe('tessera CLI', () => {
  it('inspect prints per-layer parameters, the total and KV-cache bytes per token', () => {
    const r = tessera('inspect', modelDir('babyllama-tok105-1M'));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^0\s+GQA 4 KV heads\s+49,280\s+SwiGLU 352\s+135,296\s+512$/m);
    expect(r.stdout).toContain('total: 936,448 params');
    expect(r.stdout).toContain('KV cache per token: 2.50 KiB at fp32, 1.25 KiB at fp16/bf16');
  });

  it('perplexity prints NLL, perplexity and throughput', () => {
    const r = tessera('perplexity', modelDir('stories260K'), '--data', TINYSTORIES, '--tokens', '2048', '--seq-len', '256', '--threads', '1');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/windows of 256 tokens\): 2040 predicted tokens/);
    const nll = Number(/mean NLL ([\d.]+)/.exec(r.stdout)![1]);
    expect(nll).toBeGreaterThan(0.5);
    expect(nll).toBeLessThan(3);
    expect(r.stdout).toMatch(/perplexity [\d.]+ · \d+ tokens\/s \(1 threads\)/);
  });

  it('generate prints the greedy continuation', () => {
    const r = tessera('generate', modelDir('stories260K'), '--prompt', 'Zoo', '--tokens', '20');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^Zoo was a little girl named Lily\./);
  });

  it('answers bad input with one line and a non-zero exit, never a stack trace', () => {
    for (const [args, message] of [
      [['inspect', '/no/such/model'], /^tessera: \/no\/such\/model\/config\.json: model config not found\n$/],
      [['perplexity', modelDir('stories260K'), '--data', '/no/such.txt'], /^tessera: \/no\/such\.txt: text file not found\n$/],
      [['perplexity', modelDir('stories260K'), '--tokens', 'many'], /^tessera: option --tokens: "many" is not a positive integer\n$/],
    ] as const) {
      const r = tessera(...args);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
    }
  });
});
