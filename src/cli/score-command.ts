import { Option, type Command } from 'commander';
import { buildLibrary, RIDGE_GRID } from '../bld/run.js';
import { defaultThreads, positiveInt } from './options.js';
import { DEFAULT_MODEL, DEFAULT_SPACE, DEFAULT_TEXT } from './paths.js';
import type { ChannelRanking } from '../bld/derive.js';
import type { Print } from './commands.js';
import { progressReporter } from './progress.js';

export interface ScoreCommandOptions {
  model: string;
  space: string;
  data: string;
  out: string;
  calibTokens: number;
  validTokens: number;
  seqLen: number;
  workers: number;
  ranking: ChannelRanking;
  seed: number;
}

/** The options that define a block library, shared by `score` and `search`. */
export function addLibraryOptions(c: Command): Command {
  return c
    .option('--model <dir>', 'HuggingFace checkpoint directory', DEFAULT_MODEL)
    .option('--space <space.json>', 'search space', DEFAULT_SPACE)
    .option('--data <text>', 'text: calibration from its start, validation from the paragraphs after', DEFAULT_TEXT)
    .option('--calib-tokens <n>', 'calibration tokens', positiveInt('--calib-tokens'), 4096)
    .option('--valid-tokens <n>', 'validation tokens', positiveInt('--valid-tokens'), 2048)
    .option('--seq-len <n>', 'tokens per window', positiveInt('--seq-len'), 128)
    .option('--workers <n>', 'worker threads (one onnxruntime thread each)', positiveInt('--workers'), defaultThreads())
    .addOption(new Option('--ranking <r>', 'FFN channel ranking for narrower widths').choices(['activation', 'magnitude']).default('activation'));
}

/** `tessera score`: builds or resumes the block library; Ctrl-C stops cleanly, keeping finished candidates. */
export async function scoreCommand(opts: ScoreCommandOptions, print: Print): Promise<void> {
  const abort = new AbortController();
  const onSigint = () => {
    process.stderr.write('\ninterrupted: finishing the running candidates; run the same command again to resume\n');
    abort.abort();
  };
  process.once('SIGINT', onSigint);
  try {
    const r = await buildLibrary({
      ...opts,
      ridgeGrid: RIDGE_GRID,
      signal: abort.signal,
      onStage: (s) => print(s),
      onProgress: progressReporter('candidates'),
    });
    if (r.interrupted) {
      print(`stopped after ${r.computed} new candidates; ${r.library.completed} are in ${r.library.dir}`);
      process.exitCode = 130;
      return;
    }
    print(`block library ${r.library.dir}: ${r.library.completed} candidates (${r.computed} computed now, ${r.resumed} resumed)` +
      (r.computed > 0 ? ` · activations ${r.seconds.activations.toFixed(1)} s, candidates ${r.seconds.jobs.toFixed(1)} s` : ''));
    print(`scores: ${r.library.dir}/scores.json`);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
