/**
 * Distillation: how much global KD heals the children Tessera picks, with and without trained BLD, and what
 * it costs. Both shared models, ×1.5, ×2 and ×3 priced by a profile measured here; KL and perplexity on the
 * last 20% of TinyStories before and after 100k and 600k training tokens, and the share of the NLL gap
 * closed. Also: which loss to distil with (each model's ×1.5 child, 600k tokens), and training throughput as a
 * ratio to forward throughput measured in the same run (both shared models and the SmolLM2-135M shape).
 * Writes results/bench-distill.{json,md}; parts not run keep their rows from the last results.
 *
 *   npm run bench:distill [-- --quick] [--parts children,losses,throughput]     --quick: stories260K only, ×1.5, 100k tokens
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parentArchitecture } from '../src/arch/config.js';
import { RIDGE_GRID } from '../src/bld/derive.js';
import { score } from '../src/bld/score.js';
import { DEFAULT_LOSS, DISTILL_DEFAULTS, distillChild, describeLoss, parseLoss } from '../src/distill/distill.js';
import type { DistillationRecord } from '../src/export/provenance.js';
import { exportSolution } from '../src/export/export.js';
import { profileRun } from '../src/hardware/profile.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { parseModelConfig } from '../src/model/config.js';
import { llamaConfigJson, randomWeights } from '../src/model/random.js';
import { INPUT_IDS } from '../src/onnx/decoder-graph.js';
import { DecoderSession } from '../src/onnx/session.js';
import { cpuRuntime, float32Tensor, int32Tensor } from '../src/onnx/runtime.js';
import { Run } from '../src/run/run.js';
import { solve } from '../src/search/solve.js';
import { buildTrainingGraph, REFERENCE_HIDDEN, REFERENCE_LOGPROBS, type LossWeights } from '../src/train/graph.js';
import { adamWScalars, OPTIMIZER } from '../src/train/optimizer.js';
import type ort from 'onnxruntime-node';
import { writeFileAtomic } from '../src/util/atomic.js';
import { table } from '../src/util/format.js';
import { DEFAULT_HARDWARE, DEFAULT_SPACE, DEFAULT_TEXT, PROJECT_ROOT, SHARED_DIR } from '../src/util/project.js';
import { Rng } from '../src/util/rng.js';
import { median } from '../src/util/timing.js';

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
import { machine, partsArg, writeResult } from './support.js';

const quick = process.argv.includes('--quick');
const PARTS = partsArg(['children', 'losses', 'throughput']);
const RESULT = join(PROJECT_ROOT, 'results/bench-distill.json');
const previous = existsSync(RESULT) ? JSON.parse(readFileSync(RESULT, 'utf8')) : {};
const MODELS = quick ? ['stories260K'] : ['stories260K', 'babyllama-tok105-1M'];
const SPEEDUPS = quick ? [1.5] : [1.5, 2, 3];
const TOKENS = quick ? [102_400] : [102_400, 614_400];
const BLD_TOKENS = 16_384;
// Cosine or LM loss alone left both more KL and more NLL than kl + cosine in every earlier run (102k tokens): not repeated.
const LOSSES: LossWeights[] = [{ kl: 1 }, { kl: 1, cosine: 1 }, { kl: 1, lm: 1 }, parseLoss(DEFAULT_LOSS)];
const LOSS_TOKENS = quick ? 102_400 : 614_400;
const OUT = join(PROJECT_ROOT, 'results/distill');
const THREADS = machine().cores;
const runtime = cpuRuntime(THREADS);

interface Row {
  model: string;
  /** The loss distilled with (rows of runs before it was recorded used kl + cosine, the default then). */
  loss?: string;
  budget: number;
  bld: boolean;
  tokens: number;
  child: string;
  architecture: string;
  before: DistillationRecord['before'];
  after: DistillationRecord['after'];
  parentPerplexity: number;
  nllGapClosed: number;
  seconds: number;
}

async function distilled(childDir: string, parentDir: string, out: string, tokens: number, loss: LossWeights): Promise<{ record: DistillationRecord; seconds: number }> {
  rmSync(out, { recursive: true, force: true });
  const t0 = performance.now();
  const r = await distillChild(childDir, loadCheckpoint(parentDir), out, { ...DISTILL_DEFAULTS, data: DEFAULT_TEXT, tokens, loss, runtime });
  if (r.status !== 'complete') throw new Error('interrupted');
  return { record: r.record, seconds: (performance.now() - t0) / 1000 };
}

/** Tokens per second of a forward pass and of a training step (student forward + backward + AdamW, plus the teacher's forward), same batches, same run. */
async function throughput(name: string, config: ReturnType<typeof parseModelConfig>, batch: number, seq: number) {
  const rng = new Rng(5);
  const arch = parentArchitecture(config);
  const weights = randomWeights(config, arch, rng);
  const ids = Int32Array.from({ length: batch * seq }, () => rng.int(config.vocabSize));
  const forward = await DecoderSession.create(config, weights, { logits: 'all' }, runtime);
  const training = buildTrainingGraph(config, weights, batch, seq, { kl: 1, cosine: 1 }, { clip: 1 });
  const trainSession = await runtime.session(training.graph, { repeated: true });
  const scalars = adamWScalars(0, 1e-4);
  const feeds: Record<string, ort.Tensor> = {
    [INPUT_IDS]: int32Tensor(ids, [batch, seq]),
    [REFERENCE_LOGPROBS]: float32Tensor(new Float32Array(batch * seq * config.vocabSize).fill(-Math.log(config.vocabSize)), [batch, seq, config.vocabSize]),
    [OPTIMIZER.lr]: float32Tensor(Float32Array.of(scalars.lr), []),
    [OPTIMIZER.c1]: float32Tensor(Float32Array.of(scalars.c1), []),
    [OPTIMIZER.c2]: float32Tensor(Float32Array.of(scalars.c2), []),
    ...Object.fromEntries(arch.map((_, i) => [REFERENCE_HIDDEN(i + 1), float32Tensor(rng.normalArray(batch * seq * config.hiddenSize), [batch, seq, config.hiddenSize])])),
  };
  for (const [k, t] of training.weights) {
    feeds[k] = float32Tensor(t.data, t.shape);
    for (const which of ['m', 'v'] as const) feeds[OPTIMIZER.moment(which, k)] = float32Tensor(new Float32Array(t.data.length), t.shape);
  }
  const time = async (f: () => Promise<unknown>, n: number) => {
    await f();
    const ts: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await f();
      ts.push((performance.now() - t0) / 1000);
    }
    return median(ts);
  };
  const n = name.startsWith('SmolLM') ? 3 : 10;
  const fwd = await time(() => forward.run({ ids, batch, seq }), n);
  // A training step: the student's forward, backward and AdamW update, all in its graph; distillation adds the teacher's forward.
  const train = await time(() => trainSession.run(feeds), n);
  const step = fwd + train;
  await forward.release();
  await trainSession.release();
  // A training step of the student alone (forward, backward, AdamW) against its forward; and the whole distillation step with the teacher's forward.
  return { model: name, batch, seq, forwardTokensPerSecond: (batch * seq) / fwd, trainingTokensPerSecond: (batch * seq) / train, ratio: fwd / train, distillationRatio: fwd / step };
}

interface LossRow {
  model: string;
  loss: string;
  tokens: number;
  before: DistillationRecord['before'];
  after: DistillationRecord['after'];
  parentPerplexity: number;
  nllGapClosed: number;
}

/** What a loss leaves on unseen text, in nats per token: the child's KL from its parent plus its NLL above the parent's. */
const leftOver = (r: LossRow) => r.after.kl + Math.log(r.after.perplexity / r.parentPerplexity);

async function main() {
  const rows: Row[] = PARTS.has('children') ? [] : (previous.rows ?? []);
  // Loss rows of an earlier format (one model, no parent perplexity) are not comparable: they are left out.
  const lossRows: LossRow[] = PARTS.has('losses') ? [] : ((previous.losses ?? []) as LossRow[]).filter((r) => r.model !== undefined && r.parentPerplexity !== undefined);
  for (const model of PARTS.has('children') || PARTS.has('losses') ? MODELS : []) {
    const modelDir = join(SHARED_DIR, 'models', model);
    const inputs = { model: modelDir, space: DEFAULT_SPACE, data: DEFAULT_TEXT, calibTokens: 4096, validTokens: 2048, seqLen: 128, ranking: 'activation' as const, ridgeGrid: RIDGE_GRID, seed: 0 };
    const plain = Run.create(join(OUT, model), inputs);
    await score(plain, { workers: THREADS });
    // One measured profile prices both libraries, so their children differ by their candidates alone.
    const hardware = await profileRun(plain, DEFAULT_HARDWARE, { runtime, repeats: 5 });
    const solveAt = (run: Run, speedup: number) => solve(run, { hardware, budget: { speedup }, metric: 'kl', strategy: 'mip-tabu', solver: 'highs', timeLimitSeconds: 60, tabuIterations: 50, samples: 100, solutions: 1, diversity: 2, seed: 0, runtime });
    if (PARTS.has('children')) {
      const bld = Run.create(join(OUT, `${model}-bld`), { ...inputs, bldTokens: BLD_TOKENS });
      const t0 = performance.now();
      await score(bld, { workers: THREADS });
      process.stderr.write(`${model}: library with trained BLD (${BLD_TOKENS} tokens per candidate) in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
      for (const speedup of SPEEDUPS) {
        for (const [withBld, run] of [[false, plain], [true, bld]] as const) {
          const [s] = await solveAt(run, speedup);
          const child = exportSolution(run, s.id);
          for (const tokens of TOKENS) {
            process.stderr.write(`${model} · ×${speedup} · ${withBld ? 'trained BLD' : 'closed-form fits'} · ${tokens} tokens\n`);
            const { record, seconds } = await distilled(child.dir, modelDir, join(run.dir, 'children', `${s.id}-kd${tokens}`), tokens, parseLoss(DEFAULT_LOSS));
            rows.push({ model, loss: describeLoss(parseLoss(DEFAULT_LOSS)), budget: speedup, bld: withBld, tokens: record.tokens, child: s.id, architecture: s.spec.architecture.map((b) => `${b.attention}/${b.ffn}`).join(' '), before: record.before, after: record.after, parentPerplexity: record.parentPerplexity, nllGapClosed: record.nllGapClosed, seconds });
          }
        }
      }
    }
    if (PARTS.has('losses')) {
      const [s] = await solveAt(plain, 1.5);
      const child = exportSolution(plain, s.id);
      for (const loss of LOSSES) {
        process.stderr.write(`${model} · ×1.5 · loss ${describeLoss(loss)} · ${LOSS_TOKENS} tokens\n`);
        const { record } = await distilled(child.dir, modelDir, join(OUT, `loss-${model}-${describeLoss(loss).replace(/\W+/g, '-')}`), LOSS_TOKENS, loss);
        lossRows.push({ model, loss: describeLoss(loss), tokens: record.tokens, before: record.before, after: record.after, parentPerplexity: record.parentPerplexity, nllGapClosed: record.nllGapClosed });
      }
    }
  }

  const smol = parseModelConfig('SmolLM2-135M config', llamaConfigJson({ hidden: 576, layers: 30, heads: 9, kvHeads: 3, intermediate: 1536, vocab: 49152, maxPositions: 8192, ropeTheta: 100000 }));
  type Speed = Awaited<ReturnType<typeof throughput>>;
  const speed: Speed[] = PARTS.has('throughput')
    ? [
        await throughput('stories260K', loadCheckpoint(join(SHARED_DIR, 'models/stories260K')).config, DISTILL_DEFAULTS.batch, DISTILL_DEFAULTS.seqLen),
        await throughput('babyllama-tok105-1M', loadCheckpoint(join(SHARED_DIR, 'models/babyllama-tok105-1M')).config, DISTILL_DEFAULTS.batch, DISTILL_DEFAULTS.seqLen),
        ...(quick ? [] : [await throughput('SmolLM2-135M shape (random weights)', smol, DISTILL_DEFAULTS.batch, DISTILL_DEFAULTS.seqLen)]),
      ]
    : (previous.throughput ?? []);

  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  // What the defaults rest on, computed from the rows above.
  // The default loss: the one leaving the least KL + excess NLL on unseen text, averaged over the models.
  const losses = [...new Set(lossRows.map((r) => r.loss))].map((loss) => {
    const of = lossRows.filter((r) => r.loss === loss);
    return { loss, leftOver: mean(of.map(leftOver)), closed: mean(of.map((r) => r.nllGapClosed)) };
  });
  const bestLoss = [...losses].sort((x, y) => x.leftOver - y.leftOver)[0];
  const mostClosed = [...losses].sort((x, y) => y.closed - x.closed)[0];
  const defaultLoss = losses.find((l) => l.loss === describeLoss(parseLoss(DEFAULT_LOSS)));
  const pairs = rows.filter((r) => !r.bld).map((r) => ({ r, b: rows.find((x) => x.bld && x.model === r.model && x.budget === r.budget && x.tokens === r.tokens)! }));
  const meanGain = (f: (r: Row) => number) => pairs.reduce((s, { r, b }) => s + (f(r) - f(b)), 0) / pairs.length;
  const goal = MODELS.map((m) => rows.find((r) => r.model === m && r.budget === 1.5 && !r.bld && r.tokens === Math.max(...TOKENS))).filter((r): r is Row => r !== undefined);
  const findings = [
    ...(losses.length === 0 ? [] : [`- Loss: ${bestLoss.loss} leaves the least KL + excess NLL on unseen text (${bestLoss.leftOver.toFixed(3)} nats per token, mean over the models; ${defaultLoss === bestLoss ? 'the default' : `the default ${describeLoss(parseLoss(DEFAULT_LOSS))}: ${defaultLoss?.leftOver.toFixed(3) ?? 'not measured'}`}); ${mostClosed.loss} closes the most of the NLL gap.`]),
    `- Trained BLD (${BLD_TOKENS} tokens a candidate): KL before distillation lower by ${meanGain((r) => r.before.kl).toFixed(3)} on average, after it by ${meanGain((r) => r.after.kl).toFixed(3)} (positive: BLD helps); the library takes longer to build. It stays off by default (\`--bld-tokens 0\`) unless these numbers say otherwise.`,
    ...goal.map((r) => `- ${r.model} ×1.5, loss ${r.loss ?? 'kl + cosine'}: ${pct(r.nllGapClosed)} of the NLL gap closed with ${r.tokens} tokens in ${r.seconds.toFixed(0)} s (goal: ≥ 60%).`),
    ...MODELS.flatMap((m) => lossRows.filter((r) => r.model === m && r.loss === describeLoss(parseLoss(DEFAULT_LOSS))).map((r) => `- ${m} ×1.5 with the default loss (${r.loss}): ${pct(r.nllGapClosed)} of the NLL gap closed with ${r.tokens} tokens (goal: ≥ 60%).`)),
  ];
  const md: string[] = [
    '# Distillation', '',
    `Global distillation (\`tessera distill\`: AdamW at its default peak learning rate (2e-3 × (s / 0.125)², s the median RMS of the child's linear weights: 2e-3 for stories260K, 6e-5 for babyllama), ${DISTILL_DEFAULTS.warmup} warm-up steps then cosine decay, batches of ${DISTILL_DEFAULTS.batch} × 128 tokens from the first 60% of ${DEFAULT_TEXT.replace(/^.*\//, '')}; KL and perplexity on 4096 tokens of its last 20%) of the children \`tessera solve\` picks at each speed-up (mip-tabu, priced by a profile measured here), from a library of closed-form fits or of candidates also trained by BLD (${BLD_TOKENS} tokens each). Machine: ${machine().cpu}, ${THREADS} threads. Command: \`npm run bench:distill\`.`, '',
    '## Findings', '', ...findings, '',
    '## Children before and after distillation', '',
    table(['model', 'budget', 'candidates', 'loss', 'tokens', 'KL before → after', 'perplexity before → after (parent)', 'NLL gap closed', 'seconds'], rows.map((r) => [
      r.model, `×${r.budget}`, r.bld ? 'trained BLD' : 'closed-form', r.loss ?? 'kl + cosine', String(r.tokens), `${r.before.kl.toFixed(3)} → ${r.after.kl.toFixed(3)}`, `${r.before.perplexity.toFixed(2)} → ${r.after.perplexity.toFixed(2)} (${r.parentPerplexity.toFixed(2)})`, pct(r.nllGapClosed), r.seconds.toFixed(0),
    ])).split('\n').map((l) => `    ${l}`).join('\n'), '',
    `## Which loss (the ×1.5 child of each model, ${lossRows[0]?.tokens ?? LOSS_TOKENS} tokens)`, '',
    table(['model', 'loss', 'KL after', 'perplexity after (parent)', 'NLL gap closed', 'KL + excess NLL'], lossRows.map((r) => [r.model, r.loss, r.after.kl.toFixed(3), `${r.after.perplexity.toFixed(3)} (${r.parentPerplexity.toFixed(3)})`, pct(r.nllGapClosed), leftOver(r).toFixed(3)])).split('\n').map((l) => `    ${l}`).join('\n'), '',
    '## Training throughput', '',
    'Training: the student\'s forward, backward and AdamW step; distillation adds the teacher\'s forward. Every weight is trained (on the SmolLM2-135M shape too, which `tessera distill` would train through adapters by default), at the batch `tessera distill` trains with; ratios are to a forward pass of the same batch through the inference graph, measured in the same run (medians).', '',
    table(['model', 'batch × seq', 'forward tokens/s', 'training tokens/s', 'training / forward', 'distillation step / forward'], speed.map((s) => [s.model, `${s.batch} × ${s.seq}`, s.forwardTokensPerSecond.toFixed(0), s.trainingTokensPerSecond.toFixed(0), s.ratio.toFixed(2), s.distillationRatio.toFixed(2)])).split('\n').map((l) => `    ${l}`).join('\n'), '',
  ];
  writeFileAtomic(join(PROJECT_ROOT, 'results/bench-distill.md'), md.join('\n'));
  const path = writeResult('bench-distill.json', { what: 'global distillation of searched children: before/after, with and without trained BLD; losses; training throughput', machine: machine(), bldTokens: BLD_TOKENS, rows, losses: lossRows, throughput: speed });
  console.log(md.join('\n'));
  console.log(`wrote ${path} and results/bench-distill.md`);
}

await main();
