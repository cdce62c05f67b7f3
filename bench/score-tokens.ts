/**
 * How many validation tokens a candidate's global score needs. Every candidate's KL is a mean over the
 * validation tokens, and scoring's time at real sizes is almost all those tokens' passes through the parent's
 * later layers and head, so the default count by parent size (`DEFAULT_TOKENS`) trades time against how well
 * the scores rank candidates. For both shared models: libraries scored on 256, 512 and 2048 validation tokens
 * (the same calibration tokens, so the same fitted weights); the rank correlation of their candidates' KL with
 * the 2048-token scores; and the child `tessera solve` picks from each at ×1.5, ×2 and ×3 (measured cpu-local pricing), judged by its KL from
 * the parent on 4096 unseen tokens (the last 20% of the text, which no library saw).
 *
 *   npm run bench:tokens     → results/bench-tokens.{json,md}
 */
import { join } from 'node:path';
import { RIDGE_GRID } from '../src/bld/derive.js';
import { score } from '../src/bld/score.js';
import { takeWindows } from '../src/data/sequences.js';
import { paragraphs, readText } from '../src/data/text.js';
import { EVAL_FROM } from '../src/distill/distill.js';
import { exportSolution } from '../src/export/export.js';
import { profileRun } from '../src/hardware/profile.js';
import { distributionOn, modelDivergence } from '../src/lm/divergence.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { loadTokenizer } from '../src/model/tokenizer.js';
import { cpuRuntime } from '../src/onnx/runtime.js';
import { Run } from '../src/run/run.js';
import { solve } from '../src/search/solve.js';
import { writeFileAtomic } from '../src/util/atomic.js';
import { table } from '../src/util/format.js';
import { DEFAULT_HARDWARE, DEFAULT_SPACE, DEFAULT_TEXT, PROJECT_ROOT, SHARED_DIR } from '../src/util/project.js';
import { machine, writeResult } from './support.js';

const MODELS = ['stories260K', 'babyllama-tok105-1M'];
const VALID_TOKENS = [256, 512, 2048];
const REFERENCE_TOKENS = 2048;
const SPEEDUPS = [1.5, 2, 3];
const UNSEEN_TOKENS = 4096;
const OUT = join(PROJECT_ROOT, 'results/tokens');
const THREADS = machine().cores;
const runtime = cpuRuntime(THREADS);

/** Ranks 1..n of `xs`, ties sharing their mean rank. */
function ranks(xs: readonly number[]): number[] {
  const order = xs.map((x, i) => [x, i] as const).sort((a, b) => a[0] - b[0]);
  const out = new Array<number>(xs.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    for (let k = i; k <= j; k++) out[order[k][1]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return out;
}

/** Spearman's rank correlation: Pearson's of the ranks. */
function spearman(a: readonly number[], b: readonly number[]): number {
  const [ra, rb] = [ranks(a), ranks(b)];
  const mean = (r: number[]) => r.reduce((s, v) => s + v, 0) / r.length;
  const [ma, mb] = [mean(ra), mean(rb)];
  let [sab, saa, sbb] = [0, 0, 0];
  for (let i = 0; i < ra.length; i++) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) ** 2;
    sbb += (rb[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

interface Library {
  validTokens: number;
  kl: Map<string, number>;
  run: Run;
}

interface ChildRow {
  model: string;
  speedup: number;
  validTokens: number;
  architecture: string;
  unseenKl: number;
}

async function main() {
  const libraryRows: { model: string; validTokens: number; candidates: number; spearman: number }[] = [];
  const childRows: ChildRow[] = [];
  for (const model of MODELS) {
    const modelDir = join(SHARED_DIR, 'models', model);
    const parent = loadCheckpoint(modelDir);
    const libraries: Library[] = [];
    for (const validTokens of VALID_TOKENS) {
      const run = Run.create(join(OUT, `${model}-valid${validTokens}`), { model: modelDir, space: DEFAULT_SPACE, data: DEFAULT_TEXT, calibTokens: 4096, validTokens, seqLen: 128, ranking: 'activation', ridgeGrid: RIDGE_GRID, seed: 0 });
      process.stderr.write(`${model}: library on ${validTokens} validation tokens\n`);
      const r = await score(run, { workers: THREADS });
      if (r.status !== 'complete') throw new Error('interrupted');
      libraries.push({ validTokens, kl: new Map(run.library().scores().map((s) => [s.key, s.kl!])), run });
    }
    const reference = libraries.find((l) => l.validTokens === REFERENCE_TOKENS)!;
    const keys = [...reference.kl.keys()];
    for (const l of libraries) {
      libraryRows.push({ model, validTokens: l.validTokens, candidates: keys.length, spearman: spearman(keys.map((k) => l.kl.get(k)!), keys.map((k) => reference.kl.get(k)!)) });
    }

    const tokenizer = loadTokenizer(modelDir);
    const docs = paragraphs(readText(DEFAULT_TEXT));
    const unseen = takeWindows(tokenizer, docs, Math.floor(EVAL_FROM * docs.length), DEFAULT_TEXT, 128, UNSEEN_TOKENS);
    const parentDistribution = await distributionOn(parent.config, parent.source, unseen, 128, runtime);
    // One profile measured here prices every library's candidates (as bench:distill's), so the children differ by their scores alone.
    const hardware = await profileRun(reference.run, DEFAULT_HARDWARE, { runtime, repeats: 5 });
    for (const speedup of SPEEDUPS) {
      for (const l of libraries) {
        const [s] = await solve(l.run, { hardware, budget: { speedup }, metric: 'kl', strategy: 'mip-tabu', solver: 'highs', timeLimitSeconds: 60, tabuIterations: 50, samples: 100, solutions: 1, diversity: 2, seed: 0, runtime });
        const child = loadCheckpoint(exportSolution(l.run, s.id, { replace: true }).dir);
        const { kl } = await modelDivergence(child.config, child.source, unseen.ids, parentDistribution, runtime);
        const architecture = s.spec.architecture.map((b) => `${b.attention}/${b.ffn}`).join(' ');
        childRows.push({ model, speedup, validTokens: l.validTokens, architecture, unseenKl: kl });
        process.stderr.write(`${model} ×${speedup} · ${l.validTokens} tokens: unseen KL ${kl.toFixed(4)} · ${architecture}\n`);
      }
    }
  }

  const referenceChild = (r: ChildRow) => childRows.find((c) => c.model === r.model && c.speedup === r.speedup && c.validTokens === REFERENCE_TOKENS)!;
  const change = (r: ChildRow) => r.unseenKl / referenceChild(r).unseenKl - 1;
  const percent = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;
  const findings = VALID_TOKENS.filter((v) => v !== REFERENCE_TOKENS).map((v) => {
    const rs = childRows.filter((r) => r.validTokens === v);
    const changes = rs.map(change);
    const rho = Math.min(...libraryRows.filter((r) => r.validTokens === v).map((r) => r.spearman));
    return `- ${v} tokens: Spearman ρ ≥ ${rho.toFixed(4)} with the ${REFERENCE_TOKENS}-token scores; ${rs.filter((r) => r.architecture === referenceChild(r).architecture).length} of ${rs.length} children the same, unseen KL ${percent(changes.reduce((a, b) => a + b, 0) / changes.length)} on average (from ${percent(Math.min(...changes))} to ${percent(Math.max(...changes))}).`;
  });
  const md = [
    '# Validation tokens for the global score',
    '',
    `Libraries of each shared model on the default space, scored on ${VALID_TOKENS.join(', ')} validation tokens (4096 calibration tokens each, so the same fitted candidates); the child \`tessera solve\` picks from each (mip-tabu, priced by one cpu-local profile measured here for all of a model's libraries), judged by its KL from the parent on ${UNSEEN_TOKENS} unseen tokens (the last ${Math.round(100 * (1 - EVAL_FROM))}% of the text). Machine: ${machine().cpu}, ${THREADS} threads. Command: \`npm run bench:tokens\`.`,
    '',
    '## Findings',
    '',
    ...findings,
    '',
    '## Candidates\' scores against the 2048-token scores',
    '',
    table(['model', 'validation tokens', 'candidates', 'Spearman ρ of KL'], libraryRows.map((r) => [r.model, String(r.validTokens), String(r.candidates), r.spearman.toFixed(4)])).split('\n').map((l) => `    ${l}`).join('\n'),
    '',
    '## The children they lead to',
    '',
    table(['model', 'budget', 'validation tokens', 'unseen KL', `vs ${REFERENCE_TOKENS} tokens' child`, 'same child'], childRows.map((r) => [r.model, `×${r.speedup}`, String(r.validTokens), r.unseenKl.toFixed(4), percent(change(r)), r.architecture === referenceChild(r).architecture ? 'yes' : 'no'])).split('\n').map((l) => `    ${l}`).join('\n'),
    '',
  ];
  writeFileAtomic(join(PROJECT_ROOT, 'results/bench-tokens.md'), md.join('\n'));
  const path = writeResult('bench-tokens.json', { what: 'validation tokens for the global score: rank correlation of candidates\' KL, and the unseen KL of the children solved from each library', machine: machine(), libraries: libraryRows, children: childRows });
  console.log(md.join('\n'));
  console.log(`wrote ${path} and results/bench-tokens.md`);
}

await main();
