/**
 * Progress for long work: a self-rewriting line with an ETA on a terminal, plain log lines otherwise
 * (at most one every few seconds, so CI logs stay readable).
 */
export function progressReporter(label: string, stream: NodeJS.WriteStream = process.stderr): (done: number, total: number) => void {
  const start = performance.now();
  let lastLine = 0;
  return (done, total) => {
    const elapsed = (performance.now() - start) / 1000;
    const eta = done > 0 ? (elapsed / done) * (total - done) : NaN;
    const text = `${label}: ${done}/${total} (${((100 * done) / total).toFixed(0)}%) · ${elapsed.toFixed(1)} s elapsed · ETA ${Number.isFinite(eta) ? eta.toFixed(1) + ' s' : '?'}`;
    if (stream.isTTY) {
      stream.write(`\r${text}\x1b[K${done === total ? '\n' : ''}`);
    } else if (done === total || elapsed - lastLine >= 5) {
      lastLine = elapsed;
      stream.write(text + '\n');
    }
  };
}
