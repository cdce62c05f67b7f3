import { DRIFT_TOLERANCE, hasDrifted } from '../src/hardware/drift.js';

/**
 * Timings taken while the machine is in the state its profile measured. This shared machine has spells of
 * a minute or two in which everything runs ×1.3–1.6 slower and small children's speed-ups drop with it (see
 * src/hardware/drift.ts); a benchmark of predicted against measured speed-ups, or of repeatability, taken across
 * such spells measures the spells. So a timing whose parent ran slower than the profile's prediction for it by
 * more than DRIFT_TOLERANCE is kept in the record and timed again after a pause, up to `ATTEMPTS` times, as a
 * benchmark harness waits out a busy machine; the last attempt stands whatever its drift, and the tables say so.
 * A parent running faster than profiled is recorded but not timed again: the profile then caught a slow spell
 * (babyllama's parent ran at ×0.70–×0.95 of its profile in this session's timings), and waiting does not change
 * that — profiling again does.
 */
export const ATTEMPTS = 3;
export const PAUSE_SECONDS = 60;

/** One timing attempt's drift per scenario (null: no measured profile to compare with). */
export type Drifts = readonly (number | null)[];

/** One timing and its drifts. */
export interface Attempt<T> {
  readonly result: T;
  readonly drifts: Drifts;
}

export interface Steady<T> {
  /** The kept timing: the last attempt's. */
  readonly result: T;
  /** Every attempt, the kept one last. */
  readonly attempts: readonly Attempt<T>[];
  /** Whether the kept attempt ran no slower than the tolerance allows. */
  readonly steady: boolean;
}

/** Times `time` until no scenario's parent ran slower than the tolerance allows, or `ATTEMPTS` times. */
export async function steadyTiming<T>(what: string, time: () => T | Promise<T>, driftsOf: (t: T) => Drifts): Promise<Steady<T>> {
  const attempts: Attempt<T>[] = [];
  for (;;) {
    const result = await time();
    const drifts = driftsOf(result);
    attempts.push({ result, drifts });
    const steady = !drifts.some((d) => hasDrifted(d) && d! > 1);
    if (steady || attempts.length === ATTEMPTS) return { result, attempts, steady };
    process.stderr.write(`${what}: the parent ran ${drifts.map((d) => (d === null ? '?' : `×${d.toFixed(2)}`)).join(', ')} of its profiled time (slower by more than ${100 * DRIFT_TOLERANCE}%); timing again in ${PAUSE_SECONDS} s\n`);
    await new Promise((done) => setTimeout(done, PAUSE_SECONDS * 1000));
  }
}

/** "×1.52 → ×1.02": each attempt's drift farthest from 1, the kept one last. */
export function describeAttempts(attempts: readonly Attempt<unknown>[]): string {
  const worst = (d: Drifts) => d.reduce<number | null>((w, x) => (x === null ? w : w === null || Math.abs(Math.log(x)) > Math.abs(Math.log(w)) ? x : w), null);
  return attempts.map(({ drifts }) => { const w = worst(drifts); return w === null ? '?' : `×${w.toFixed(2)}`; }).join(' → ');
}
