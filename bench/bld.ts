/**
 * Whole-library time of blockwise local distillation per stage (parent activations; building, fitting
 * and scoring candidates) with 1 and 2 workers, for both shared models and a random-weight model with
 * SmolLM2-135M's shape, on the puzzle space. Writes results/bench-bld.json.
 *
 *   npm run bench:bld [-- --quick | --full]
 *   --quick: shared models only; --full: the SmolLM2-shaped model with 1 worker too (another ~20 minutes)
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parentArchitecture } from '../src/arch/config.js';
import { RIDGE_GRID } from '../src/bld/derive.js';
import { score } from '../src/bld/score.js';
import { Run } from '../src/run/run.js';
import { table } from '../src/util/format.js';
import { DEFAULT_SPACE, DEFAULT_TEXT, SHARED_DIR } from '../src/util/project.js';
import { parseModelConfig } from '../src/model/config.js';
import { llamaConfigJson, randomWeights } from '../src/model/random.js';
import { writeCheckpoint } from '../src/model/save.js';
import { Rng } from '../src/util/rng.js';
import { machine, writeResult } from './support.js';

const quick = process.argv.includes('--quick');
const full = process.argv.includes('--full');
const scratch = mkdtempSync(join(tmpdir(), 'tessera-bench-bld-'));

/** SmolLM2-135M's shape with seeded weights, on disk; it borrows stories260K's tokenizer (ids stay within its vocabulary). */
function smolCheckpoint(): string {
  const dir = join(scratch, 'smollm2-135m-shape');
  const json = llamaConfigJson({ hidden: 576, layers: 30, heads: 9, kvHeads: 3, intermediate: 1536, vocab: 49152, maxPositions: 8192, ropeTheta: 100000 });
  const config = parseModelConfig('SmolLM2-135M config', json);
  writeCheckpoint(dir, json, config, parentArchitecture(config), randomWeights(config, parentArchitecture(config), new Rng(135)));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(SHARED_DIR, 'models/stories260K', f), join(dir, f));
  return dir;
}

async function main() {
  const models: { name: string; dir: string; calibTokens: number; validTokens: number; seqLen: number; workerCounts: number[] }[] = [
    { name: 'stories260K', dir: join(SHARED_DIR, 'models/stories260K'), calibTokens: 4096, validTokens: 2048, seqLen: 128, workerCounts: [1, 2] },
    { name: 'babyllama-tok105-1M', dir: join(SHARED_DIR, 'models/babyllama-tok105-1M'), calibTokens: 4096, validTokens: 2048, seqLen: 128, workerCounts: [1, 2] },
    ...(quick ? [] : [{ name: 'SmolLM2-135M shape (random weights)', dir: smolCheckpoint(), calibTokens: 4096, validTokens: 512, seqLen: 128, workerCounts: full ? [1, 2] : [2] }]),
  ];
  const rows: { model: string; workers: number; candidates: number; calibTokens: number; validTokens: number; activationsSeconds: number; candidatesSeconds: number; totalSeconds: number }[] = [];
  for (const m of models) {
    for (const workers of m.workerCounts) {
      process.stderr.write(`${m.name}, ${workers} worker(s)\n`);
      const out = join(scratch, `${m.name.replace(/\W+/g, '-')}-${workers}`);
      const t0 = performance.now();
      const run = Run.create(out, { model: m.dir, space: DEFAULT_SPACE, data: DEFAULT_TEXT, calibTokens: m.calibTokens, validTokens: m.validTokens, seqLen: m.seqLen, ranking: 'activation', ridgeGrid: RIDGE_GRID, seed: 0 });
      const r = await score(run, { workers });
      const total = (performance.now() - t0) / 1000;
      rows.push({ model: m.name, workers, candidates: r.computed, calibTokens: m.calibTokens, validTokens: m.validTokens, activationsSeconds: r.seconds.activations, candidatesSeconds: r.seconds.candidates, totalSeconds: total });
    }
  }
  const speedups = models.flatMap((m) => {
    const [one, two] = [1, 2].map((w) => rows.find((r) => r.model === m.name && r.workers === w));
    return one && two ? [{ model: m.name, candidatesSpeedup: one.candidatesSeconds / two.candidatesSeconds, totalSpeedup: one.totalSeconds / two.totalSeconds }] : [];
  });
  console.log(table(
    ['model', 'workers', 'candidates', 'calib+valid tokens', 'activations s', 'candidates s', 'total s'],
    rows.map((r) => [r.model, String(r.workers), String(r.candidates), `${r.calibTokens}+${r.validTokens}`, r.activationsSeconds.toFixed(1), r.candidatesSeconds.toFixed(1), r.totalSeconds.toFixed(1)]),
  ));
  console.log('\n' + speedups.map((s) => `${s.model}: 2 workers vs 1 — candidates ×${s.candidatesSpeedup.toFixed(2)}, total ×${s.totalSpeedup.toFixed(2)}`).join('\n'));
  const path = writeResult('bench-bld.json', { what: 'block-library build time per stage, puzzle.json, activation ranking; total includes loading and tokenising', machine: machine(), rows, speedups });
  console.log(`wrote ${path}`);
  rmSync(scratch, { recursive: true, force: true });
}

await main();
