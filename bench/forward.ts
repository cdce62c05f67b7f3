/**
 * Forward-pass speed: tokens/s of the shared models and of a random-weight model with SmolLM2-135M's
 * shape, and GEMM efficiency — the FLOP/s the forward pass achieves as a fraction of onnxruntime's
 * own single-MatMul FLOP/s, measured in the same run with the same threads. Writes results/bench-forward.json.
 */
import ort from 'onnxruntime-node';
import { parentArchitecture, type ModelConfig } from '../src/arch/config.js';
import { forwardFlops } from '../src/arch/flops.js';
import { DEFAULT_MODEL, SHARED_DIR } from '../src/util/project.js';
import { table } from '../src/util/format.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { parseModelConfig } from '../src/model/config.js';
import { llamaConfigJson, randomWeights } from '../src/model/random.js';
import type { ModelWeights } from '../src/model/weights.js';
import { GraphBuilder, DataType } from '../src/onnx/graph-builder.js';
import { DecoderSession } from '../src/onnx/session.js';
import { cpuRuntime } from '../src/onnx/runtime.js';
import { Rng } from '../src/util/rng.js';
import { machine, median, timeRuns, writeResult } from './support.js';

const REPEATS = 5;

interface Case {
  name: string;
  config: ModelConfig;
  weights: ModelWeights;
  tokens: number;
  seq: number;
  batch: number;
}

/** FLOP/s of one [m, k] × [k, n] MatMul with a constant right side, the shape of a typical projection. */
async function matmulFlops(m: number, k: number, n: number, threads: number, rng: Rng): Promise<number> {
  const g = new GraphBuilder('matmul');
  const a = g.input('a', DataType.FLOAT, [m, k]);
  const out = g.node('MatMul', [a, g.initializer('b', rng.normalArray(k * n), [k, n])]);
  g.expose(out, 'y', [m, n]);
  const session = await cpuRuntime(threads).session(g);
  const feeds = { a: new ort.Tensor('float32', rng.normalArray(m * k), [m, k]) };
  const seconds = median(await timeRuns(() => session.run(feeds), REPEATS * 3, 2));
  await session.release();
  return (2 * m * k * n) / seconds;
}

async function forwardCase(c: Case, threads: number, rng: Rng) {
  const session = await DecoderSession.create(c.config, c.weights, {}, cpuRuntime(threads));
  const runs = Math.ceil(c.tokens / (c.batch * c.seq));
  const batches = Array.from({ length: runs }, () => Int32Array.from({ length: c.batch * c.seq }, () => rng.int(c.config.vocabSize)));
  const seconds = median(await timeRuns(async () => {
    for (const ids of batches) await session.run({ ids, batch: c.batch, seq: c.seq });
  }, REPEATS));
  await session.release();
  const tokens = runs * c.batch * c.seq;
  const flops = runs * forwardFlops(c.config, parentArchitecture(c.config), c.batch, c.seq);
  return { tokens, seconds, tokensPerSecond: tokens / seconds, flopsPerSecond: flops / seconds };
}

async function main() {
  const rng = new Rng(2026);
  const cases: Case[] = [];
  for (const dir of [DEFAULT_MODEL, `${SHARED_DIR}/models/babyllama-tok105-1M`]) {
    const ck = loadCheckpoint(dir);
    cases.push({ name: dir.split('/').pop()!, config: ck.config, weights: ck.weights, tokens: 16384, seq: 256, batch: 16 });
  }
  // SmolLM2-135M's config.json sizes; the weights are seeded noise (speed does not depend on them).
  const smol = parseModelConfig('SmolLM2-135M config', {
    ...llamaConfigJson({ hidden: 576, layers: 30, heads: 9, kvHeads: 3, intermediate: 1536, vocab: 49152, maxPositions: 8192, ropeTheta: 100000 }),
  });
  cases.push({ name: 'SmolLM2-135M shape (random weights)', config: smol, weights: randomWeights(smol, parentArchitecture(smol), new Rng(135)), tokens: 4096, seq: 512, batch: 4 });

  const threadCounts = [...new Set([1, machine().cores])];
  const reference: Record<number, number> = {};
  for (const t of threadCounts) reference[t] = await matmulFlops(2048, 576, 1536, t, rng);

  const rows = [];
  for (const c of cases) {
    for (const t of threadCounts) {
      const r = await forwardCase(c, t, rng);
      rows.push({ model: c.name, threads: t, seq: c.seq, batch: c.batch, ...r, matmulFlopsPerSecond: reference[t], gemmEfficiency: r.flopsPerSecond / reference[t] });
    }
  }
  console.log(table(
    ['model', 'threads', 'tokens', 'tokens/s', 'GFLOP/s', 'MatMul GFLOP/s', 'GEMM efficiency'],
    rows.map((r) => [r.model, String(r.threads), String(r.tokens), r.tokensPerSecond.toFixed(0), (r.flopsPerSecond / 1e9).toFixed(1), (r.matmulFlopsPerSecond / 1e9).toFixed(1), `${(100 * r.gemmEfficiency).toFixed(0)}%`]),
  ));
  const path = writeResult('bench-forward.json', {
    what: 'forward-pass throughput (fp32, onnxruntime CPU) and GEMM efficiency vs one [2048×576]·[576×1536] MatMul, medians of repeats, same run',
    machine: machine(),
    rows,
  });
  console.log(`\nwrote ${path}`);
}

await main();
