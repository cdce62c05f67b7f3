import { buildLibrary, RIDGE_GRID } from '../bld/run.js';
import type { ChannelRanking } from '../bld/init.js';
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
