import { isObject, type JsonObject } from '../model/json.js';
import { fail } from '../util/errors.js';
import { calibrationFit, describeCalibration, type CalibrationPoint } from './calibrate.js';
import { isScenarioTime, parseHardwareProfile, scenarioTimes } from './load.js';
import type { ScenarioTime } from './types.js';

/**
 * A measured profile calibrated again from the timings it keeps (pure): each scenario's raw sub-block times and
 * whole-model points, refitted by today's `calibrationFit`, replace its priced times and calibration. Timing a profile
 * takes minutes to an hour and is as noisy as the machine; a better fit should not need the machine at all, and fitted
 * again to the very same timings, old and new fits can be compared on equal terms. Returns the profile, every other
 * field as it was, and a line per scenario on how well the new fit predicts whole models.
 */
export function recalibratedProfile(file: string, json: JsonObject): { profile: JsonObject; lines: string[] } {
  const measured = parseHardwareProfile(file, json).measured;
  if (measured === null) fail(`${file}: has no "measured" section; only a profile written by \`tessera profile\` can be calibrated again`);
  const calibrations = Object.entries(measured.calibration ?? {});
  if (calibrations.length === 0) fail(`${file}: field "measured.calibration" is missing; this profile predates calibration: measure it again with \`tessera profile\``);
  const scenarios: Record<string, unknown> = { ...(measured.scenarios as JsonObject) };
  const calibration: Record<string, unknown> = {};
  const lines: string[] = [];
  for (const [scenario, c] of calibrations) {
    const field = `measured.calibration.${scenario}`;
    const raw = timesOf(file, `${field}.raw`, c.raw);
    const points = pointsOf(file, `${field}.points`, c.points, raw);
    const fit = calibrationFit(raw, points);
    scenarios[scenario] = fit.times;
    calibration[scenario] = { ...fit.calibration, raw };
    lines.push(describeCalibration(scenario, fit.calibration));
  }
  const old = json.measured as JsonObject;
  return { profile: { ...json, measured: { ...old, scenarios, calibration } }, lines };
}

const OLD_PROFILE = 'measured before profiles kept their timings: measure it again with `tessera profile`';

function timesOf(file: string, field: string, value: unknown): Record<string, ScenarioTime> {
  if (value === undefined) fail(`${file}: field "${field}" is missing; ${OLD_PROFILE}`);
  return scenarioTimes(file, field, value);
}

function pointsOf(file: string, field: string, value: unknown, raw: Readonly<Record<string, ScenarioTime>>): CalibrationPoint[] {
  if (!Array.isArray(value)) fail(`${file}: field "${field}" is ${JSON.stringify(value)}; expected the list of whole models timed for calibration`);
  return value.map((p: unknown, i) => {
    const at = `${field}[${i}]`;
    if (!isObject(p) || !isScenarioTime(p.predicted) || !isScenarioTime(p.measured)) fail(`${file}: field "${at}" is ${JSON.stringify(p)}; expected { predicted, measured, counts } with times ≥ 0`);
    if (p.counts === undefined) fail(`${file}: field "${at}.counts" is missing; ${OLD_PROFILE}`);
    if (!isObject(p.counts)) fail(`${file}: field "${at}.counts" is ${JSON.stringify(p.counts)}; expected variant key → number of layers`);
    for (const [key, n] of Object.entries(p.counts)) {
      if (!(Number.isInteger(n) && (n as number) >= 0)) fail(`${file}: field "${at}.counts.${key}" is ${JSON.stringify(n)}; expected a number of layers ≥ 0`);
      if (raw[key] === undefined) fail(`${file}: field "${at}.counts" uses "${key}", which "${field.replace(/points$/, 'raw')}" has no time for`);
    }
    return { predicted: p.predicted, measured: p.measured, counts: p.counts as Record<string, number> };
  });
}
