import { DRIFT_TOLERANCE } from '../src/hardware/drift.js';
import { steadyTiming as timedSteadily, type Attempt, type Drifts, type Steady } from '../src/hardware/steady.js';

/**
 * The benchmarks' timings, taken while the machine is in the state its profile measured (src/hardware/steady.ts):
 * a benchmark of predicted against measured speed-ups, or of repeatability, taken across this shared machine's slow
 * spells measures the spells. Each timing whose parent ran slow is timed again after PAUSE_SECONDS, up to ATTEMPTS
 * times, and the tables list every attempt.
 */
export const ATTEMPTS = 3;
export const PAUSE_SECONDS = 60;

/** Times `time` until no scenario's parent ran slower than the tolerance allows, or `ATTEMPTS` times, saying why on stderr. */
export function steadyTiming<T>(what: string, time: () => T | Promise<T>, driftsOf: (t: T) => Drifts): Promise<Steady<T>> {
  return timedSteadily(time, driftsOf, {
    attempts: ATTEMPTS,
    pauseSeconds: PAUSE_SECONDS,
    onRetry: (drifts) => process.stderr.write(`${what}: the parent ran ${drifts.map((d) => (d === null ? '?' : `×${d.toFixed(2)}`)).join(', ')} of its profiled time (slower by more than ${100 * DRIFT_TOLERANCE}%); timing again in ${PAUSE_SECONDS} s\n`),
  });
}

/** "×1.52 → ×1.02": each attempt's drift farthest from 1, the kept one last. */
export function describeAttempts(attempts: readonly Attempt<unknown>[]): string {
  const worst = (d: Drifts) => d.reduce<number | null>((w, x) => (x === null ? w : w === null || Math.abs(Math.log(x)) > Math.abs(Math.log(w)) ? x : w), null);
  return attempts.map(({ drifts }) => { const w = worst(drifts); return w === null ? '?' : `×${w.toFixed(2)}`; }).join(' → ');
}
