import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataType, GraphBuilder } from '../src/onnx/graph-builder.js';
import { cpuRuntime } from '../src/onnx/runtime.js';
import { writeFileAtomic } from '../src/util/atomic.js';
import { processAlive } from '../src/util/leftovers.js';
import { writeModelDirectory } from '../src/export/model-dir.js';
import { tempDir } from './support/fixtures.js';

/** The pid of a process that has ended (and so cannot own anything any more). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const pid = Number(r.stdout);
  expect(processAlive(pid)).toBe(false);
  return pid;
}

describe('leftovers of killed runs', () => {
  const root = tempDir();

  it("a whole-file writer removes a killed writer's partial file, never a live one's", () => {
    const dead = join(root, `library.json.${deadPid()}.tmp`);
    const live = join(root, `library.json.${process.ppid}.tmp`);
    const other = join(root, `other.json.${deadPid()}.tmp`);
    for (const f of [dead, live, other]) writeFileSync(f, 'half');
    writeFileAtomic(join(root, 'library.json'), '{}');
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
    // Another file's leftovers are that file's writer's business.
    expect(existsSync(other)).toBe(true);
  });

  it("export removes a killed export's partial model directory", () => {
    const partial = join(root, `.child.partial-${deadPid()}`);
    mkdirSync(partial);
    writeFileSync(join(partial, 'config.json'), '{');
    // The write itself fails on a model that is not one; the leftover is gone before it starts.
    expect(() => writeModelDirectory(join(root, 'child'), {} as Parameters<typeof writeModelDirectory>[1])).toThrow();
    expect(existsSync(partial)).toBe(false);
  });

  it("the first session built through a file removes killed runs' temporary graphs", async () => {
    const stale = join(tmpdir(), `tessera-graph-${deadPid()}-test`);
    mkdirSync(stale, { recursive: true });
    writeFileSync(join(stale, 'model.onnx.data'), 'weights');
    const session = await cpuRuntime(1).sessionBuiltAt(() => {
      const g = new GraphBuilder('identity');
      g.input('x', DataType.FLOAT, [1]);
      g.expose('x', 'y', [1]);
      return g;
    });
    await session.release();
    expect(existsSync(stale)).toBe(false);
    expect(readdirSync(tmpdir()).filter((n) => n.startsWith(`tessera-graph-${process.pid}-`))).toEqual([]);
  });
});

describe('one writer per library', () => {
  const root = tempDir();

  it("refuses a second holder while the first lives, naming its pid; takes over a dead holder's lock", async () => {
    const { lockDirectory } = await import('../src/util/lock.js');
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      const dir = join(root, 'library');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, '.lock'), String(live.pid));
      expect(() => lockDirectory(dir, 'its block library')).toThrow(new RegExp(`library: its block library is being written by another tessera process \\(pid ${live.pid}\\)`));
      writeFileSync(join(dir, '.lock'), String(deadPid()));
      const release = lockDirectory(dir, 'its block library');
      expect(readFileSync(join(dir, '.lock'), 'utf8')).toBe(String(process.pid));
      release();
      expect(existsSync(join(dir, '.lock'))).toBe(false);
    } finally {
      live.kill();
    }
  });

  it('tessera score on a library another live process is scoring stops at once', async () => {
    const { Run } = await import('../src/run/run.js');
    const { score } = await import('../src/bld/score.js');
    const { DEFAULT_SPACE } = await import('../src/util/project.js');
    const { modelDir, TINYSTORIES } = await import('./support/fixtures.js');
    const run = Run.create(join(root, 'run'), { model: modelDir('stories260K'), space: DEFAULT_SPACE, data: TINYSTORIES, calibTokens: 256, validTokens: 128, seqLen: 64, ranking: 'activation', ridgeGrid: [0.1], seed: 0 });
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      writeFileSync(join(run.paths.library, '.lock'), String(live.pid));
      await expect(score(run, { workers: 1 })).rejects.toThrow(/is being written by another tessera process/);
    } finally {
      live.kill();
    }
  });
});

