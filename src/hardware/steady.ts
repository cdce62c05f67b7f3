import { hasDrifted } from './drift.js';

/**
 * Timing again while the machine is not in the state its profile measured (pure but for the timing and the wait).
 * A shared machine has spells of a minute or two in which everything runs ×1.3–1.8 slower, and a small child's
 * speed-up drops in them; two timings in different states disagree beyond their intervals
 * (`npm run bench:speed -- --parts states`, stories260K's ×1.5 child, single-prompt: ×1.58–×1.68 in 15 runs with the
 * parent ×1.53–×1.75 slow, ×1.68–×1.83 in 25 as profiled; 97% of pairs of the latter overlapping, 71% of all). So a
 * timing whose parent ran slower than the profile's prediction by more than DRIFT_TOLERANCE is kept in the record and
 * timed again after a pause, as a benchmark harness waits out a busy machine; the last timing stands whatever its
 * drift, and says so.
 * A parent running faster than profiled is not timed again: the profile then caught a slow spell, and waiting does
 * not change that — profiling again does.
 */

/** One timing's drift per scenario it timed: the parent's measured time over its profiled one (null: no measured profile to compare with). */
export type Drifts = readonly (number | null)[];

export interface Attempt<T> {
  readonly result: T;
  readonly drifts: Drifts;
}

export interface Steady<T> {
  /** The kept timing: the last attempt's. */
  readonly result: T;
  /** Every attempt, the kept one last. */
  readonly attempts: readonly Attempt<T>[];
  /** Whether the kept attempt's parent ran no slower than the tolerance allows. */
  readonly steady: boolean;
}

export interface RetimeOptions {
  /** Timings at most, the first included (1: never again). */
  readonly attempts: number;
  /** Seconds to wait before timing again. */
  readonly pauseSeconds: number;
  /** Told before each wait, with the drifts that call for it. */
  readonly onRetry?: (drifts: Drifts) => void;
  /** How to wait (default: a timer). */
  readonly sleep?: (seconds: number) => Promise<void>;
}

/** Whether a timing's parent ran slower than its profile by more than the tolerance, in any scenario. */
export const ranSlow = (drifts: Drifts): boolean => drifts.some((d) => d !== null && d > 1 && hasDrifted(d));

const timer = (seconds: number) => new Promise<void>((done) => setTimeout(done, seconds * 1000));

/** Times `time` until its parent ran no slower than the tolerance allows (`ranSlow`), or `o.attempts` times. */
export async function steadyTiming<T>(time: () => T | Promise<T>, driftsOf: (t: T) => Drifts, o: RetimeOptions): Promise<Steady<T>> {
  const attempts: Attempt<T>[] = [];
  for (;;) {
    const result = await time();
    const drifts = driftsOf(result);
    attempts.push({ result, drifts });
    const steady = !ranSlow(drifts);
    if (steady || attempts.length >= Math.max(1, o.attempts)) return { result, attempts, steady };
    o.onRetry?.(drifts);
    await (o.sleep ?? timer)(o.pauseSeconds);
  }
}
