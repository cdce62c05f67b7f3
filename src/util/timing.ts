export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Runs `fn` `warmup` times untimed, then `repeats` times; returns each timed run's seconds. */
export async function timeRuns(fn: () => Promise<unknown>, repeats: number, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return times;
}

/**
 * Times `fn` at least `minRuns` times and until `minSeconds` have been spent timing (at most `maxRuns`),
 * after `warmup` untimed runs: short calls get many samples, so their median is not noise.
 */
export async function medianSeconds(fn: () => Promise<unknown>, o: { minRuns: number; warmup: number; minSeconds?: number; maxRuns?: number }): Promise<number> {
  for (let i = 0; i < o.warmup; i++) await fn();
  const times: number[] = [];
  let spent = 0;
  while (times.length < o.minRuns || (spent < (o.minSeconds ?? 0.05) && times.length < (o.maxRuns ?? 500))) {
    const t0 = performance.now();
    await fn();
    const t = (performance.now() - t0) / 1000;
    times.push(t);
    spent += t;
  }
  return median(times);
}
