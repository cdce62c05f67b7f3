import { labelVariant } from '../arch/variants/registry.js';
import type { ScoreResult } from '../bld/score.js';
import type { Evaluation } from '../evaluate/evaluate.js';
import type { DistillationRecord } from '../export/provenance.js';
import { describeDrift, hasDrifted } from '../hardware/drift.js';
import type { Run } from '../run/run.js';
import type { Solution } from '../search/solve.js';
import { bytes, int, table } from '../util/format.js';

export type Print = (line: string) => void;

export function printScore(r: ScoreResult, run: Run, print: Print): void {
  const library = run.library();
  if (r.status === 'interrupted') {
    print(`stopped after ${r.computed} new candidates; ${library.completed} are in ${library.dir}`);
    return;
  }
  if (r.status === 'local') {
    print(`block library ${library.dir}: ${library.completed} candidates fitted and scored locally (${r.computed} computed now in ${r.seconds.candidates.toFixed(0)} s); ${r.remaining} still lack global scores: solve with --metric nmse meanwhile, or run score again without --local-only to add them`);
    print(`scores: ${run.paths.scores}`);
    return;
  }
  if (r.status === 'partial') {
    print(`${r.computed} candidates computed now in ${r.seconds.candidates.toFixed(0)} s (worker time: fits ${r.seconds.local.toFixed(0)} s, global scores ${r.seconds.global.toFixed(0)} s); ${library.completed} are in ${library.dir}, ${r.remaining} of other layers remain (score them with --layers, or without it for all)`);
    return;
  }
  print(`block library ${library.dir}: ${library.completed} candidates (${r.computed} computed now, ${r.resumed} resumed)` +
    (r.computed > 0 ? ` · activations ${r.seconds.activations.toFixed(1)} s, candidates ${r.seconds.candidates.toFixed(1)} s (worker time: fits ${r.seconds.local.toFixed(0)} s, global scores ${r.seconds.global.toFixed(0)} s)` : ''));
  print(`scores: ${run.paths.scores}`);
}

export function printSolution(s: Solution, print: Print): void {
  const spec = s.spec;
  print(`\nsolution ${s.id} → ${s.dir}/spec.json${s.reused ? ' (solved before for the same request)' : ''}`);
  print(table(['layer', 'attention', 'FFN'], s.architecture.map((b, i) => [String(i), labelVariant('attention', b.attention), labelVariant('ffn', b.ffn)])));
  print(`\nparameters ${int(spec.params)} of the parent's ${int(spec.parent.params)} (${((100 * spec.params) / spec.parent.params).toFixed(1)}%)`);
  print(table(['scenario', 'predicted ms', 'parent ms', 'speed-up', 'tokens/s', 'memory'], spec.predicted.map((c) => [
    c.scenario,
    c.totalMs.toFixed(2),
    (c.totalMs * c.speedup).toFixed(2),
    `×${c.speedup.toFixed(2)}`,
    c.tokensPerSecond.toFixed(1),
    bytes(c.weightBytes + c.kvCacheBytes),
  ])));
  const { solver, start, tabu, samples } = spec.search;
  if (solver !== undefined && start !== undefined) {
    print(`MIP (${solver.backend}, ${solver.status}${solver.gap === 0 ? ', gap 0' : ''}): summed ${spec.quality.metric} ${start.additive.toFixed(4)}, true KL of its child ${start.kl.toFixed(4)}`);
  }
  if (tabu !== undefined) print(`Tabu: ${tabu.iterations} iterations (stopped by ${tabu.stoppedBy}), ${tabu.evaluations} children evaluated in ${tabu.seconds.toFixed(1)} s: true KL ${tabu.klStart.toFixed(4)} → ${tabu.klBest.toFixed(4)}`);
  if (samples !== undefined) print(`random search: best of ${samples} architectures within the budgets`);
  print(`child (${spec.request.strategy}): KL ${spec.quality.kl.toFixed(4)} nats/token from the parent, LM loss ${spec.quality.lmLoss.toFixed(4)} (parent ${spec.quality.parentLmLoss.toFixed(4)}) on validation text`);
  for (const w of solutionWarnings(s)) print(`warning: ${w}`);
}

/** What a user should hear before exporting a child: it computes no attention or no FFN at all, or it lost most of its parent's quality. */
export function solutionWarnings(s: Pick<Solution, 'architecture' | 'spec'>): string[] {
  const warnings: string[] = [];
  for (const sub of ['attention', 'ffn'] as const) {
    if (s.architecture.every((b) => b[sub].kind === 'noop')) warnings.push(`the child keeps no ${sub === 'ffn' ? 'FFN' : 'attention'} in any layer; the budget asks for more than this space can give while keeping a working model`);
  }
  const { lmLoss, parentLmLoss } = s.spec.quality;
  // Perplexity ×10 (2.3 nats) over the parent's: no longer a model of the same text in any useful sense.
  if (lmLoss - parentLmLoss > Math.log(10)) warnings.push(`the child's perplexity is ${Math.exp(lmLoss - parentLmLoss).toFixed(0)}× its parent's on validation text`);
  return warnings;
}

export function printEvaluation(e: Evaluation, print: Print): void {
  print(`\n${e.child} vs ${e.parent} on ${e.text.tokens} tokens of ${e.text.file} (${e.text.note})`);
  const agreement = e.greedyAgreement.tokens > 0 ? ` · greedy agreement ${(100 * e.greedyAgreement.share).toFixed(1)}% of ${e.greedyAgreement.tokens} tokens` : '';
  print(`KL ${e.kl.toFixed(4)} nats/token · perplexity parent ${e.perplexity.parent.toFixed(3)}, child ${e.perplexity.child.toFixed(3)}${agreement}`);
  if (e.latency.length > 0) {
    print(table(['scenario', 'parent ms', 'child ms', 'measured speed-up', 'predicted speed-up'], e.latency.map((l) => [
      l.scenario, (l.parentSeconds.total * 1e3).toFixed(1), (l.childSeconds.total * 1e3).toFixed(1), l.said, `×${l.predictedSpeedup.toFixed(2)}`,
    ])));
  }
  for (const l of e.latency) {
    if (l.earlierDrifts !== undefined) print(`${l.scenario}: timed ${l.earlierDrifts.length + 1} times, the parent at ${[...l.earlierDrifts, l.machineDrift!].map((d) => `×${d.toFixed(2)}`).join(' → ')} of its profiled time; the last timing stands`);
    if (hasDrifted(l.machineDrift)) print(`warning: ${l.scenario}: ${describeDrift(l.machineDrift!, e.hardwareName ?? 'the profile')}`);
  }
  for (const s of e.skippedScenarios) print(`not timed: ${s}`);
}

export function printDistillation(dir: string, r: DistillationRecord, print: Print): void {
  print(`\ndistilled ${r.from} → ${dir}: ${r.steps} steps, ${int(r.tokens)} tokens, loss ${Object.entries(r.loss).map(([k, w]) => (w === 1 ? k : `${w}·${k}`)).join(' + ')}`);
  print(`on ${r.evaluation.tokens} unseen tokens (paragraphs ${r.evaluation.paragraphs.join('–')}): KL ${r.before.kl.toFixed(4)} → ${r.after.kl.toFixed(4)} · perplexity ${r.before.perplexity.toFixed(3)} → ${r.after.perplexity.toFixed(3)} (parent ${r.parentPerplexity.toFixed(3)}) · ${(100 * r.nllGapClosed).toFixed(0)}% of the NLL gap closed`);
}
