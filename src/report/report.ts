import { existsSync } from 'node:fs';
import { fromDeciBlockConfigs } from '../arch/decilm.js';
import { describeLoss, EVAL_FROM, TRAIN_SHARE } from '../distill/distill.js';
import type { Evaluation } from '../evaluate/evaluate.js';
import { readProvenance } from '../export/provenance.js';
import { childFiles } from '../run/paths.js';
import { readJsonFile } from '../model/json.js';
import type { Runtime } from '../onnx/runtime.js';
import type { Run } from '../run/run.js';
import { readSpec, type Spec } from '../run/spec.js';
import { requestOptions, solve } from '../search/solve.js';
import { writeFileAtomic } from '../util/atomic.js';
import { fail, TesseraError } from '../util/errors.js';
import { silent, type Reporter } from '../util/reporter.js';
import { architectureSvg, frontierSvg, type FrontierPoint } from './svg.js';

export interface ReportOptions {
  /** Profile the frontier is priced on (default: the first solution's). */
  readonly hardware?: string;
  /** Speed-up budgets at which the frontier is traced. */
  readonly speedups: readonly number[];
  readonly runtime: Runtime;
  readonly reporter?: Reporter;
}

/** The frontier budgets `tessera report` and `tessera search` trace by default. */
export const FRONTIER_SPEEDUPS: readonly number[] = [1.25, 1.5, 2, 2.5, 3];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function mdTable(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function htmlTable(header: string[], rows: string[][]): string {
  return `<table><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

const FLAGS: Record<string, string> = { speedup: '--speedup', latencyMs: '--latency-ms', throughput: '--throughput', scenario: '--scenario', memoryGb: '--memory-gb', params: '--params', paramsRatio: '--params-ratio' };

function budgetFlags(b: Spec['request']['budget']): string {
  return Object.entries(b).flatMap(([k, v]) => (v === undefined || v === null || v === false ? [] : k === 'fitMemory' ? ['--fit-memory'] : [`${FLAGS[k]} ${v}`])).join(' ');
}

/** The slowest scenario's predicted speed-up: what a "×S in every scenario" budget achieves. */
const achieved = (s: Spec) => Math.min(...s.predicted.map((p) => p.speedup));

/**
 * The report stage: report/report.md and report.html — the parent and each requested child per layer (SVG),
 * the quality-vs-speed frontier traced with the run's own strategy and options (budgets the run already
 * solved are read back, not solved again), predicted vs measured cost of evaluated children, and the
 * commands that reproduce it all.
 */
export async function writeReport(run: Run, o: ReportOptions): Promise<{ md: string; html: string }> {
  const reporter = o.reporter ?? silent;
  const specs = run.paths.solutionIds().map((id) => readSpec(run.paths.spec(id)));
  const requested = specs.filter((s) => s.origin === 'solve');
  if (requested.length === 0) fail(`${run.paths.solutions}: no solutions yet; run \`tessera solve --run ${run.dir}\` first`);
  const first = requested[0];
  const hardware = o.hardware ?? first.hardware.file;
  const profile = run.profile(hardware);
  const { config, architecture: parentArch } = run.parentSpec();

  reporter.stage(`frontier: ${first.request.strategy} at speed-ups ${o.speedups.map((s) => `×${s}`).join(', ')} on ${profile.name}`);
  const frontier: (FrontierPoint & { lmLoss: number })[] = [];
  for (const speedup of o.speedups) {
    try {
      const [s] = await solve(run, { ...requestOptions(first.request), hardware, budget: { speedup }, solutions: 1, origin: 'frontier', runtime: o.runtime });
      frontier.push({ speedup: achieved(s.spec), kl: s.spec.quality.kl, lmLoss: s.spec.quality.lmLoss, label: `budget ×${speedup}` });
    } catch (e) {
      if (!(e instanceof TesseraError)) throw e;
      reporter.stage(`frontier: ×${speedup} not reached (${e.message.split('\n')[0]})`);
    }
  }
  const solutionPoints = requested.map((s) => ({ speedup: achieved(s), kl: s.quality.kl, label: s.id }));
  const frontierPicture = frontierSvg(frontier, solutionPoints, `predicted speed-up over the parent (slowest scenario, ${profile.name})`);
  writeFileAtomic(run.paths.reportFile('frontier.svg'), frontierPicture);
  const archPicture = architectureSvg(config, [{ title: 'parent', arch: parentArch }, ...requested.map((s) => ({ title: s.id, arch: fromDeciBlockConfigs(s.id, config, s.block_configs) }))]);
  writeFileAtomic(run.paths.reportFile('architectures.svg'), archPicture);

  // Each requested child as exported, and after distillation where it was distilled.
  const evaluations = requested.flatMap((s) => [[s.id, run.paths.child(s.id)], [`${s.id} distilled`, run.paths.distilled(s.id)]].flatMap(([id, dir]) => {
    const path = childFiles.evaluation(dir);
    return existsSync(path) ? [{ id, e: readJsonFile(path, 'evaluation') as Evaluation }] : [];
  }));
  const distillations = requested.flatMap((s) => {
    const d = readProvenance(run.paths.distilled(s.id))?.distillation;
    return d === undefined ? [] : [[s.id, `${d.tokens} tokens, ${describeLoss(d.loss)}`, `${d.before.kl.toFixed(4)} → ${d.after.kl.toFixed(4)}`, `${d.before.perplexity.toFixed(3)} → ${d.after.perplexity.toFixed(3)} (parent ${d.parentPerplexity.toFixed(3)})`, `${(100 * d.nllGapClosed).toFixed(0)}%`]];
  });
  const distillHeader = ['child', 'distillation', 'KL before → after', 'perplexity before → after', 'NLL gap closed'];
  const distillNote = distillations.length > 0 ? `On the last ${Math.round(100 * (1 - EVAL_FROM))}% of the text, after training on its first ${Math.round(100 * TRAIN_SHARE)}%.` : '';
  const m = run.manifest;
  const solutionRows = requested.map((s) => [
    s.id,
    budgetFlags(s.request.budget),
    `${((100 * s.params) / s.parent.params).toFixed(1)}%`,
    s.predicted.map((p) => `${p.scenario} ×${p.speedup.toFixed(2)}`).join(', '),
    s.search.start !== undefined ? s.search.start.kl.toFixed(4) : '-',
    s.quality.kl.toFixed(4),
    s.search.solver !== undefined ? `${s.request.strategy}: ${s.search.solver.backend} ${s.search.solver.status}${s.search.solver.gap === 0 ? ' (gap 0)' : ''}` : s.request.strategy,
  ]);
  const solutionHeader = ['solution', 'budget', 'params', 'predicted speed-up', 'KL (MIP child)', 'KL (chosen)', 'strategy'];
  const frontierRows = frontier.map((p) => [p.label, `×${p.speedup.toFixed(2)}`, p.kl.toFixed(4), Math.exp(p.lmLoss).toFixed(3)]);
  const frontierHeader = ['budget', 'predicted speed-up', 'KL', 'perplexity'];
  const measuredRows = evaluations.flatMap(({ id, e }) => e.latency.map((l) => [id, l.scenario, `${(l.parentSeconds.total * 1e3).toFixed(1)} ms`, `${(l.childSeconds.total * 1e3).toFixed(1)} ms`, `×${l.predictedSpeedup.toFixed(2)}`, l.said ?? `×${l.measuredSpeedup.toFixed(2)}`]));
  // Evaluations written before intervals were measured say the speed-up alone.
  const measuredHeader = ['child', 'scenario', 'parent measured', 'child measured', 'predicted speed-up', 'measured speed-up'];
  const qualityRows = evaluations.map(({ id, e }) => [id, e.kl.toFixed(4), e.perplexity.parent.toFixed(3), e.perplexity.child.toFixed(3), `${(100 * e.greedyAgreement.share).toFixed(1)}%`, `${e.text.tokens} tokens, ${e.text.note}`]);
  const qualityHeader = ['child', 'KL', 'parent ppl', 'child ppl', 'greedy agreement', 'text'];
  const commands = [
    `npx tessera score --model ${m.parent.dir} --space ${m.space.file} --data ${m.data.calibration.file} --out ${run.dir} --calib-tokens ${m.data.calibration.tokens} --valid-tokens ${m.data.validation.tokens} --seq-len ${m.data.seqLen} --ranking ${m.options.ranking}`,
    ...requested.map((s) => `npx tessera solve --run ${run.dir} --hardware ${s.hardware.file} ${budgetFlags(s.request.budget)} --strategy ${s.request.strategy}`),
    `npx tessera export ${run.paths.solution(first.id)}`,
    `npx tessera evaluate ${run.paths.child(first.id)} --parent ${m.parent.dir} --data ${m.data.calibration.file}`,
    `npx tessera report --run ${run.dir} --hardware ${hardware}`,
  ];
  const intro = `Parent ${m.parent.dir} (${config.sourceArchitecture}), search space ${m.space.name} (${m.space.file}), hardware ${profile.device.name} (${profile.file}, ${first.hardware.costs} costs). ` +
    `Block library on ${m.data.calibration.tokens} calibration tokens (paragraphs ${m.data.calibration.paragraphs.join('–')}) and ${m.data.validation.tokens} validation tokens (paragraphs ${m.data.validation.paragraphs.join('–')}) of ${m.data.calibration.file}.`;

  const md = [
    '# Tessera report', '', intro, '',
    '## Architectures', '', '![architectures](architectures.svg)', '',
    '## Solutions', '', mdTable(solutionHeader, solutionRows), '',
    '## Quality vs speed', '', `Each point is the child ${first.request.strategy} chooses at that budget; each is a solution in ${run.paths.solutions} and can be exported.`, '', '![frontier](frontier.svg)', '', mdTable(frontierHeader, frontierRows), '',
    '## Evaluated children (text the search never saw)', '', qualityRows.length > 0 ? mdTable(qualityHeader, qualityRows) : '_No child evaluated yet: run `tessera export` and `tessera evaluate`._', '',
    '## Distillation', '', distillations.length > 0 ? `${distillNote}\n\n${mdTable(distillHeader, distillations)}` : '_No child distilled yet: `tessera distill` or `tessera search --distill-tokens N`._', '',
    '## Predicted vs measured speed (onnxruntime, this machine)', '', measuredRows.length > 0 ? mdTable(measuredHeader, measuredRows) : '_No measurements yet._', '',
    '## Reproduce', '', '```sh', ...commands, '```', '',
  ].join('\n');
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>Tessera report</title><style>
body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#111}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}th{background:#f3f4f6}pre{background:#f3f4f6;padding:1em;overflow-x:auto;font-size:12px}
</style></head><body><h1>Tessera report</h1><p>${esc(intro)}</p>
<h2>Architectures</h2>${archPicture}
<h2>Solutions</h2>${htmlTable(solutionHeader, solutionRows)}
<h2>Quality vs speed</h2>${frontierPicture}${htmlTable(frontierHeader, frontierRows)}
<h2>Evaluated children (text the search never saw)</h2>${qualityRows.length > 0 ? htmlTable(qualityHeader, qualityRows) : '<p>No child evaluated yet.</p>'}
<h2>Distillation</h2>${distillations.length > 0 ? `<p>${esc(distillNote)}</p>${htmlTable(distillHeader, distillations)}` : '<p>No child distilled yet.</p>'}
<h2>Predicted vs measured speed (onnxruntime, this machine)</h2>${measuredRows.length > 0 ? htmlTable(measuredHeader, measuredRows) : '<p>No measurements yet.</p>'}
<h2>Reproduce</h2><pre>${esc(commands.join('\n'))}</pre></body></html>
`;
  const paths = { md: run.paths.reportFile('report.md'), html: run.paths.reportFile('report.html') };
  writeFileAtomic(paths.md, md);
  writeFileAtomic(paths.html, html);
  return paths;
}
