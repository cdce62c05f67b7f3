import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { evaluateChild, type Evaluation } from '../export/evaluate.js';
import { exportChild } from '../export/export.js';
import { writeReport } from '../report/report.js';
import type { Print } from './commands.js';
import { table } from './format.js';
import { defaultThreads, nonNegativeInt, positiveInt } from './options.js';
import { DEFAULT_MODEL, DEFAULT_TEXT } from './paths.js';

export function exportCommand(solutionDir: string, out: string | undefined, print: Print, replace = false): string {
  const target = out ?? join(resolve(solutionDir), '..', '..', 'children', resolve(solutionDir).split('/').pop()!);
  const r = exportChild(solutionDir, target, { replace });
  print(`exported ${r.architecture.length}-layer child to ${r.dir}: config.json (DeciLM block_configs), model.safetensors, model.onnx (+ .data), tokenizer, tessera.json`);
  return r.dir;
}

export interface EvaluateFlags {
  parent: string;
  data: string;
  tokens: number;
  seqLen: number;
  prompts: number;
  generateTokens: number;
  hardware?: string;
  repeats: number;
  threads: number;
}

export async function evaluateCommand(childDir: string, f: EvaluateFlags, print: Print): Promise<Evaluation> {
  const e = await evaluateChild(childDir, { ...f, promptTokens: 8, onStage: (s) => print(s) });
  print(`\n${e.child} vs ${e.parent} on ${e.text.tokens} tokens of ${e.text.file} (${e.text.note})`);
  const agreement = e.greedyAgreement.tokens > 0 ? ` · greedy agreement ${(100 * e.greedyAgreement.share).toFixed(1)}% of ${e.greedyAgreement.tokens} tokens` : '';
  print(`KL ${e.kl.toFixed(4)} nats/token · perplexity parent ${e.perplexity.parent.toFixed(3)}, child ${e.perplexity.child.toFixed(3)}${agreement}`);
  if (e.latency.length > 0) {
    print(table(['scenario', 'parent ms', 'child ms', 'measured speed-up', 'predicted speed-up'], e.latency.map((l) => [
      l.scenario, (l.parentSeconds.total * 1e3).toFixed(1), (l.childSeconds.total * 1e3).toFixed(1), `×${l.measuredSpeedup.toFixed(2)}`, `×${l.predictedSpeedup.toFixed(2)}`,
    ])));
  }
  for (const s of e.skippedScenarios) print(`not timed: ${s}`);
  print(`wrote ${join(e.child, 'evaluation.json')}`);
  return e;
}

export async function reportCommand(run: string, f: { hardware?: string; threads: number }, print: Print): Promise<string> {
  const r = await writeReport(run, { hardware: f.hardware, speedups: [1.1, 1.25, 1.5, 2, 2.5, 3], threads: f.threads, onStage: (s) => print(s) });
  print(`report: ${r.html} (and ${r.md})`);
  return r.html;
}

export function addModelCommands(p: Command, print: Print): void {
  p.command('export')
    .description('write a solution as a model directory: DeciLM config.json, model.safetensors, model.onnx, tokenizer')
    .argument('<solution-dir>', 'results/<run>/solutions/<id>')
    .option('--out <dir>', 'model directory (default results/<run>/children/<id>)')
    .action((dir: string, opts: { out?: string }) => void exportCommand(dir, opts.out, print));

  p.command('evaluate')
    .description('a child against its parent on unseen text (KL, perplexity, greedy agreement) and real latency per scenario')
    .argument('<child-dir>', 'an exported child')
    .option('--parent <dir>', 'the parent checkpoint', DEFAULT_MODEL)
    .option('--data <text>', 'text; the part the search saw is skipped', DEFAULT_TEXT)
    .option('--tokens <n>', 'evaluation tokens', positiveInt('--tokens'), 4096)
    .option('--seq-len <n>', 'tokens per window', positiveInt('--seq-len'), 128)
    .option('--prompts <n>', 'greedy-generation prompts (0: skip)', nonNegativeInt('--prompts'), 16)
    .option('--generate-tokens <n>', 'tokens generated per prompt', positiveInt('--generate-tokens'), 32)
    .option('--hardware <profile>', 'profile whose scenarios are timed (default: the one searched for)')
    .option('--repeats <n>', 'timed runs per scenario, parent and child interleaved (median kept)', positiveInt('--repeats'), 5)
    .option('--threads <n>', 'onnxruntime threads', positiveInt('--threads'), defaultThreads())
    .action(async (dir: string, opts: EvaluateFlags) => void (await evaluateCommand(dir, opts, print)));

  p.command('report')
    .description('results/<run>/report.md and report.html: architectures, frontier, predicted vs measured, commands')
    .requiredOption('--run <dir>', 'a run directory with solutions')
    .option('--hardware <profile>', 'profile for the frontier (default: the solutions\')')
    .option('--threads <n>', 'onnxruntime threads', positiveInt('--threads'), defaultThreads())
    .action(async (opts: { run: string; hardware?: string; threads: number }) => void (await reportCommand(opts.run, opts, print)));
}
