import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

/** Files that are not what a command expects: a directory, a binary, Latin-1 text, a plain file for a directory. */
function badInputs() {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-cli-'));
  const binary = join(dir, 'data.bin');
  writeFileSync(binary, Buffer.from([0x4f, 0x6e, 0x63, 0x00, 0x01, 0x02, ...Array.from({ length: 200 }, (_, i) => (i * 37) % 128)]));
  const latin1 = join(dir, 'latin1.txt');
  writeFileSync(latin1, Buffer.from('Once upon a caf\xe9 there was a tale.\n', 'latin1'));
  const file = join(dir, 'plain-file');
  writeFileSync(file, 'x');
  return { dir, binary, latin1, file };
}

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
    const bad = badInputs();
    for (const [args, message] of [
      [['inspect', '/no/such/model'], /^tessera: \/no\/such\/model\/config\.json: model config not found\n$/],
      [['perplexity', modelDir('stories260K'), '--data', '/no/such.txt'], /^tessera: \/no\/such\.txt: text file not found\n$/],
      [['perplexity', modelDir('stories260K'), '--tokens', 'many'], /^tessera: option --tokens: "many" is not a positive integer\n$/],
      [['perplexity', modelDir('stories260K'), '--data', bad.dir], new RegExp(`^tessera: ${bad.dir}: is a directory; expected a UTF-8 text file\n$`)],
      [['perplexity', modelDir('stories260K'), '--data', bad.binary], new RegExp(`^tessera: ${bad.binary}: not text: \\d+ control bytes \\(the first at offset 3\\); expected a UTF-8 text file\n$`)],
      [['perplexity', modelDir('stories260K'), '--data', bad.latin1], new RegExp(`^tessera: ${bad.latin1}: not UTF-8 text \\(byte 0xe9 at offset 15\\); convert it to UTF-8\n$`)],
      [['score', '--model', modelDir('stories260K'), '--out', bad.file], new RegExp(`^tessera: ${bad.file}: is a file; --out names the run's directory \\(made if missing\\)\n$`)],
      [['solve', '--run', bad.file, '--speedup', '1.5'], new RegExp(`^tessera: ${bad.file}: is a file, not a run directory`)],
      [['perplexity', modelDir('stories260K'), '--seq-len', '1000'], /^tessera: option --seq-len: 1000 exceeds the model's 512 positions\n$/],
    ] as const) {
      const r = tessera(...args);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
    }
  });
});

describe('tessera perplexity windows', () => {
  it('honours --tokens when the default window is longer (a model with more positions than tokens asked)', async () => {
    const { perplexitySequences } = await import('../src/cli/model-commands.js');
    const { openCheckpoint } = await import('../src/model/checkpoint.js');
    const { readText } = await import('../src/data/text.js');
    const ck = openCheckpoint(modelDir('tiny-random-llama3'));
    expect(ck.config.maxPositions).toBeGreaterThan(300);
    const flags = { protocol: 'stream' as const, paragraphs: 300, stageMb: 256 };
    const seqs = perplexitySequences(ck, readText(TINYSTORIES), { ...flags, tokens: 300 });
    expect(seqs.map((s) => s.length)).toEqual([300]);
    const two = perplexitySequences(ck, readText(TINYSTORIES), { ...flags, tokens: 700, seqLen: 256 });
    expect(two.map((s) => s.length)).toEqual([256, 256]);
    expect(() => perplexitySequences(ck, readText(TINYSTORIES), { ...flags, tokens: 100, seqLen: 256 })).toThrow(/--tokens 100 is less than one window of --seq-len 256/);
  });
});
