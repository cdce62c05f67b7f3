/**
 * How a stage tells what it is doing without printing: a line per step, and progress of long loops. The CLI
 * supplies one that prints; benchmarks and tests pass `silent` or collect the lines.
 */
export interface Reporter {
  /** One line: what starts now, or what was found. */
  stage(line: string): void;
  /** A progress callback for a loop of `total` units (`done` so far). */
  progress(label: string): (done: number, total: number) => void;
}

export const silent: Reporter = { stage: () => {}, progress: () => () => {} };
