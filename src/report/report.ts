import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fromDeciBlockConfigs } from '../arch/decilm.js';
import type { Architecture } from '../arch/variant.js';
import type { Evaluation } from '../export/evaluate.js';
import { readSpec, type SpecFile } from '../export/export.js';
import { readJsonFile } from '../model/json.js';
import { architectureCost } from '../hardware/model-cost.js';
import { formulate } from '../search/formulate.js';
import { highsBackend } from '../search/highs-backend.js';
import { openSearch } from '../search/solve.js';
import { writeFileAtomic } from '../util/atomic.js';
import { fail } from '../util/errors.js';
import { architectureSvg, frontierSvg, type FrontierPoint } from './svg.js';

export interface ReportOptions {
  readonly hardware?: string;
  /** Speed-up budgets at which the frontier is traced. */
  readonly speedups: readonly number[];
  readonly threads: number;
  readonly onStage?: (line: string) => void;
}

interface SpecView extends SpecFile {
  readonly parent: { readonly dir: string; readonly params: number };
  readonly predicted: { scenario: string; totalMs: number; speedup: number; tokensPerSecond: number; weightBytes: number; kvCacheBytes: number }[];
  readonly quality: { evaluated: { kl: number; lmLoss: number; parentLmLoss: number; klMip: number } };
  readonly params: number;
  readonly budget: Record<string, unknown>;
  readonly space: { file: string; name: string };
  readonly solver: { backend: string; status: string; gap: number | null; seconds: number };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function mdTable(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function htmlTable(header: string[], rows: string[][]): string {
  return `<table><thead><tr>${header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

function budgetFlags(b: Record<string, unknown>): string {
  const flag: Record<string, string> = { speedup: '--speedup', latencyMs: '--latency-ms', throughput: '--throughput', scenario: '--scenario', memoryGb: '--memory-gb', params: '--params', paramsRatio: '--params-ratio' };
  return Object.entries(b).flatMap(([k, v]) => (v === undefined || v === null || v === false ? [] : k === 'fitMemory' ? ['--fit-memory'] : [`${flag[k]} ${v}`])).join(' ');
}

/**
 * results/<run>/report.md and report.html: the parent and each chosen child per layer (SVG), the
 * quality-vs-speed frontier across speed-up budgets with the solutions marked, predicted vs measured cost
 * (from children evaluated with `tessera evaluate`), and the commands that reproduce it all.
 */
export async function writeReport(run: string, o: ReportOptions): Promise<{ md: string; html: string }> {
  const dir = resolve(run);
  const solutionsDir = join(dir, 'solutions');
  const specs = existsSync(solutionsDir) ? readdirSync(solutionsDir).filter((d) => existsSync(join(solutionsDir, d, 'spec.json'))).sort().map((d) => readSpec(join(solutionsDir, d, 'spec.json')) as SpecView) : [];
  if (specs.length === 0) fail(`${solutionsDir}: no solutions yet; run \`tessera solve --run ${run}\` first`);
  const hardware = o.hardware ?? specs[0].hardware.file;
  const ctx = await openSearch(dir, hardware, o.threads, o.onStage);
  const { ck, space, library, profile, costs, evaluator } = ctx;

  o.onStage?.(`frontier: the MIP's child at speed-ups ${o.speedups.map((s) => `×${s}`).join(', ')}, each evaluated`);
  const frontier: (FrontierPoint & { lmLoss: number })[] = [];
  const parentCost = architectureCost(ck.config, ck.architecture, profile, costs);
  for (const speedup of o.speedups) {
    const { problem, blocks } = formulate(ck.config, space, library.scores(), profile, costs, { speedup }, 'kl');
    const r = await highsBackend.solve(problem, { timeLimitSeconds: 60 });
    if (r.choice === undefined) continue;
    const arch: Architecture = r.choice.map((j, i) => blocks[i][j]);
    const cost = architectureCost(ck.config, arch, profile, costs);
    const achieved = Math.min(...cost.map((c, k) => parentCost[k].totalSeconds / c.totalSeconds));
    const q = await evaluator.evaluate(arch);
    frontier.push({ speedup: achieved, kl: q.kl, lmLoss: q.lmLoss, label: `budget ×${speedup}` });
  }
  const solutionPoints = specs.map((s) => ({ speedup: Math.min(...s.predicted.map((p) => p.speedup)), kl: s.quality.evaluated.kl, label: s.id }));
  const frontierFile = 'report-frontier.svg';
  const frontierPicture = frontierSvg(frontier, solutionPoints, `predicted speed-up over the parent (slowest scenario, ${profile.name})`);
  writeFileAtomic(join(dir, frontierFile), frontierPicture);
  const archPicture = architectureSvg(ck.config, [{ title: 'parent', arch: ck.architecture }, ...specs.map((s) => ({ title: s.id, arch: fromDeciBlockConfigs(s.id, ck.config, s.block_configs) }))]);
  const archFile = 'report-architectures.svg';
  writeFileAtomic(join(dir, archFile), archPicture);

  const evaluations = specs.flatMap((s) => {
    const path = join(dir, 'children', s.id, 'evaluation.json');
    return existsSync(path) ? [{ id: s.id, e: readJsonFile(path, 'evaluation') as Evaluation }] : [];
  });
  const m = ctx.manifest;
  const solutionRows = specs.map((s) => [
    s.id,
    budgetFlags(s.budget),
    `${((100 * s.params) / s.parent.params).toFixed(1)}%`,
    s.predicted.map((p) => `${p.scenario} ×${p.speedup.toFixed(2)}`).join(', '),
    s.quality.evaluated.klMip.toFixed(4),
    s.quality.evaluated.kl.toFixed(4),
    `${s.solver.backend} ${s.solver.status}${s.solver.gap === 0 ? ' (gap 0)' : ''}`,
  ]);
  const solutionHeader = ['solution', 'budget', 'params', 'predicted speed-up', 'KL (MIP child)', 'KL (after Tabu)', 'solver'];
  const frontierRows = frontier.map((p) => [p.label, `×${p.speedup.toFixed(2)}`, p.kl.toFixed(4), Math.exp(p.lmLoss).toFixed(3)]);
  const frontierHeader = ['budget', 'predicted speed-up', 'KL', 'perplexity'];
  const measuredRows = evaluations.flatMap(({ id, e }) => e.latency.map((l) => [id, l.scenario, `${(l.parentSeconds.total * 1e3).toFixed(1)} ms`, `${(l.childSeconds.total * 1e3).toFixed(1)} ms`, `×${l.predictedSpeedup.toFixed(2)}`, `×${l.measuredSpeedup.toFixed(2)}`]));
  const measuredHeader = ['child', 'scenario', 'parent measured', 'child measured', 'predicted speed-up', 'measured speed-up'];
  const qualityRows = evaluations.map(({ id, e }) => [id, e.kl.toFixed(4), e.perplexity.parent.toFixed(3), e.perplexity.child.toFixed(3), `${(100 * e.greedyAgreement.share).toFixed(1)}%`, `${e.text.tokens} tokens, ${e.text.note}`]);
  const qualityHeader = ['child', 'KL', 'parent ppl', 'child ppl', 'greedy agreement', 'text'];
  const first = specs[0];
  const commands = [
    `npx tessera score --model ${m.parent.dir} --space ${m.space.file} --data ${m.data.calibration.file} --out ${dir} --calib-tokens ${m.data.calibration.tokens} --valid-tokens ${m.data.validation.tokens} --seq-len ${m.data.seqLen} --ranking ${m.options.ranking}`,
    ...specs.map((s) => `npx tessera solve --run ${dir} --hardware ${s.hardware.file} ${budgetFlags(s.budget)}`),
    `npx tessera export ${join(dir, 'solutions', first.id)} --out ${join(dir, 'children', first.id)}`,
    `npx tessera evaluate ${join(dir, 'children', first.id)} --parent ${m.parent.dir} --data ${m.data.calibration.file}`,
    `npx tessera report --run ${dir} --hardware ${hardware}`,
  ];
  const intro = `Parent ${m.parent.dir} (${ck.config.sourceArchitecture}), search space ${space.name} (${m.space.file}), hardware ${profile.device.name} (${profile.file}, ${costs.source} costs). ` +
    `Block library on ${m.data.calibration.tokens} calibration tokens (paragraphs ${m.data.calibration.paragraphs.join('–')}) and ${m.data.validation.tokens} validation tokens (paragraphs ${m.data.validation.paragraphs.join('–')}) of ${m.data.calibration.file}.`;

  const md = [
    '# Tessera report', '', intro, '',
    '## Architectures', '', `![architectures](${archFile})`, '',
    '## Solutions', '', mdTable(solutionHeader, solutionRows), '',
    '## Quality vs speed', '', `![frontier](${frontierFile})`, '', mdTable(frontierHeader, frontierRows), '',
    '## Evaluated children (text the search never saw)', '', qualityRows.length > 0 ? mdTable(qualityHeader, qualityRows) : '_No child evaluated yet: run `tessera export` and `tessera evaluate`._', '',
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
<h2>Predicted vs measured speed (onnxruntime, this machine)</h2>${measuredRows.length > 0 ? htmlTable(measuredHeader, measuredRows) : '<p>No measurements yet.</p>'}
<h2>Reproduce</h2><pre>${esc(commands.join('\n'))}</pre></body></html>
`;
  const mdPath = join(dir, 'report.md');
  const htmlPath = join(dir, 'report.html');
  writeFileAtomic(mdPath, md);
  writeFileAtomic(htmlPath, html);
  return { md: mdPath, html: htmlPath };
}
