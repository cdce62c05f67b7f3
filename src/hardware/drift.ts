import type { ExecutionProvider } from '../onnx/providers.js';
import type { HardwareProfile } from './types.js';

/**
 * Whether a timing ran on the machine as its profile found it (pure). A measured profile predicts the parent's own
 * time (calibrated on whole models, the parent among them), so the parent's measured time over that prediction says
 * how the machine runs now against when it was profiled. This shared machine has spells of a minute or two in which
 * everything runs ×1.3–1.6 slower, and speed-ups move with them, a small child's most: stories260K's ×1.5 child,
 * single-prompt, measured ×1.54–×1.60 in such spells (parent 16–20 ms) and ×1.70–×1.78 outside them (parent
 * 12.5–13.7 ms, predicted 12.8), across seventeen fresh processes. Batch means (`speedupInterval`) cannot see a
 * spell longer than the run, so the drift is reported beside the interval: a speed-up timed in another state of
 * the machine is not the one its profile predicts.
 */

/** Beyond this share, slower or faster, the parent's time says the machine is not as profiled (processes in one state: ±5%). */
export const DRIFT_TOLERANCE = 0.15;

/**
 * The parent's measured time over its predicted time, where the prediction is a measurement of this machine as it is
 * being timed (a measured profile, of the same execution provider and threads); null where it is a spec-sheet
 * estimate (a roofline's absolute times are not this machine's) or a measurement of another setting.
 */
export function parentDrift(profile: HardwareProfile, timedOn: { readonly provider: ExecutionProvider; readonly threads: number }, measuredSeconds: number, predictedSeconds: number): number | null {
  const m = profile.measured;
  if (m === null || (m.provider ?? 'cpu') !== timedOn.provider || m.threads !== timedOn.threads) return null;
  return measuredSeconds / predictedSeconds;
}

/** Whether the machine ran beyond `DRIFT_TOLERANCE` from its profiled state (null: unknown, taken as not). */
export const hasDrifted = (drift: number | null): boolean => drift !== null && (drift > 1 + DRIFT_TOLERANCE || drift < 1 / (1 + DRIFT_TOLERANCE));

/** "the parent ran ×1.52 slower than <profile> predicts for it: …" (for a drift beyond the tolerance). */
export function describeDrift(drift: number, profileName: string): string {
  const how = drift >= 1 ? `×${drift.toFixed(2)} slower` : `×${(1 / drift).toFixed(2)} faster`;
  // Waiting helps only a slow spell now; a parent faster than profiled means the profile caught one.
  const advice = drift >= 1 ? 'evaluate again later (--retime waits for it), or profile again' : 'profile again';
  return `the parent ran ${how} than ${profileName} predicts for it: this machine is not in the state it was profiled in (other load?), and a speed-up measured now may differ from the prediction (${advice})`;
}
