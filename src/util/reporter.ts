/**
 * How a stage tells what it is doing without printing: a line per step, and progress of long loops. The CLI
 * supplies one that prints; benchmarks and tests pass `silent` or collect the lines.
 */
export interface Reporter {
  /** One line: what starts now, or what was found. */
  stage(line: string): void;
  /**
   * A progress callback for a loop of `total` units (`done` so far). `work`, the share of the work done (0–1),
   * when units differ in cost; without it each unit counts the same.
   */
  progress(label: string): (done: number, total: number, work?: number) => void;
}

export const silent: Reporter = { stage: () => {}, progress: () => () => {} };

/**
 * Seconds left: the rate is the work done since the first report (`startWork`, e.g. a resumed run's earlier
 * share, is not this run's) over the seconds since; NaN until some work is done.
 */
export function remainingSeconds(elapsed: number, startWork: number, work: number): number {
  const rate = (work - startWork) / elapsed;
  return rate > 0 && elapsed > 0 ? (1 - work) / rate : NaN;
}
