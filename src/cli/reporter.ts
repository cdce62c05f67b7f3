import { remainingSeconds, type Reporter } from '../util/reporter.js';
import type { Print } from './print.js';

/**
 * The CLI's reporter: stage lines on stdout; progress as a self-rewriting line with an ETA on a terminal,
 * plain log lines on stderr otherwise (at most one every few seconds, so CI logs stay readable).
 */
export function cliReporter(print: Print, stream: NodeJS.WriteStream = process.stderr): Reporter {
  return { stage: print, progress: (label) => progressLine(label, stream) };
}

export function progressLine(label: string, stream: NodeJS.WriteStream = process.stderr): (done: number, total: number) => void {
  const start = performance.now();
  let lastLine = 0;
  let startWork: number | null = null;
  return (done, total, work = done / total) => {
    const elapsed = (performance.now() - start) / 1000;
    startWork ??= work;
    const eta = remainingSeconds(elapsed, startWork, work);
    const text = `${label}: ${done}/${total} (${((100 * done) / total).toFixed(0)}%) · ${elapsed.toFixed(1)} s elapsed · ETA ${Number.isFinite(eta) ? eta.toFixed(1) + ' s' : '?'}`;
    if (stream.isTTY) {
      stream.write(`\r${text}\x1b[K${done === total ? '\n' : ''}`);
    } else if (done === total || elapsed - lastLine >= 5) {
      lastLine = elapsed;
      stream.write(text + '\n');
    }
  };
}
