import { FieldReader, isObject, readJsonFile, type JsonObject } from '../model/json.js';
import { fail } from '../util/errors.js';
import { DTYPES, type Device, type Dtype, type HardwareProfile, type MeasuredCosts, type Scenario, type ScenarioTime, type Workload } from './types.js';
import { EXECUTION_PROVIDERS, type ExecutionProvider } from '../onnx/providers.js';

/**
 * Hardware-profile files (`hardware-profiles/*.json`, schema in hardware-profile.schema.json). Numbers are
 * written in the units of spec sheets (TFLOP/s, GB/s, GB, µs) and converted to SI base units here.
 */
export function loadHardwareProfile(path: string): HardwareProfile {
  const raw = readJsonFile(path, 'hardware profile');
  if (!isObject(raw)) fail(`${path}: expected a JSON object`);
  return parseHardwareProfile(path, raw);
}

export function parseHardwareProfile(file: string, raw: JsonObject): HardwareProfile {
  const r: FieldReader = new FieldReader(file, raw);
  // Unknown keys are refused, as search spaces refuse them: a misspelt field would otherwise fall back silently.
  r.onlyKeys(['$schema', 'name', 'description', 'device', 'workload', 'sources', 'measured']);
  r.string('description');
  const d = r.object('device') ?? r.problem('device', 'an object describing the device');
  const w = r.object('workload') ?? r.problem('workload', 'an object with dtypes and scenarios');
  const sources = raw.sources ?? {};
  if (!isObject(sources) || !Object.values(sources).every((v) => typeof v === 'string')) r.problem('sources', 'an object mapping field paths to citations');
  const name = r.string('name') ?? file.replace(/^.*\//, '').replace(/\.json$/, '');
  return { name, file, device: parseDevice(d), workload: parseWorkload(w), sources: sources as Record<string, string>, measured: parseMeasured(r) };
}

function parseDevice(d: FieldReader): Device {
  d.onlyKeys(['name', 'peakTflops', 'memoryBandwidthGBs', 'memoryCapacityGB', 'computeEfficiency', 'bandwidthEfficiency', 'kernelOverheadUs', 'stepOverheadUs', 'comment']);
  const peaks = d.object('peakTflops') ?? d.problem('peakTflops', 'an object of dense peak TFLOP/s per dtype, e.g. { "bf16": 989.4 }');
  const peakFlops: Partial<Record<Dtype, number>> = {};
  for (const key of Object.keys(peaks.obj)) {
    if (!(DTYPES as readonly string[]).includes(key)) fail(`${d.file}: field "device.peakTflops.${key}" is not a dtype; expected one of ${DTYPES.join(', ')}`);
    peakFlops[key as Dtype] = peaks.positiveNumber(key) * 1e12;
  }
  const fraction = (key: string) => {
    const v = d.positiveNumber(key);
    if (v > 1) d.problem(key, 'a fraction in (0, 1]');
    return v;
  };
  const nonNegative = (key: string) => {
    const v = d.obj[key] ?? 0;
    if (typeof v !== 'number' || !(v >= 0)) d.problem(key, 'a number of microseconds ≥ 0');
    return v;
  };
  return {
    name: d.string('name') ?? d.problem('name', 'the device name'),
    peakFlops,
    memoryBandwidth: d.positiveNumber('memoryBandwidthGBs') * 1e9,
    memoryCapacity: d.positiveNumber('memoryCapacityGB') * 1e9,
    computeEfficiency: fraction('computeEfficiency'),
    bandwidthEfficiency: fraction('bandwidthEfficiency'),
    kernelOverhead: nonNegative('kernelOverheadUs') * 1e-6,
    stepOverhead: nonNegative('stepOverheadUs') * 1e-6,
  };
}

function dtype(r: FieldReader, key: string): Dtype {
  const v = r.string(key);
  if (v === null || !(DTYPES as readonly string[]).includes(v)) r.problem(key, `one of ${DTYPES.join(', ')}`);
  return v as Dtype;
}

function parseWorkload(w: FieldReader): Workload {
  w.onlyKeys(['weightDtype', 'activationDtype', 'kvCacheDtype', 'scenarios', 'comment']);
  const list = w.obj.scenarios;
  if (!Array.isArray(list) || list.length === 0) w.problem('scenarios', 'a non-empty list of { name, prefillTokens, generatedTokens, batch }');
  const scenarios = list.map((s, i): Scenario => {
    if (!isObject(s)) fail(`${w.file}: field "workload.scenarios[${i}]" is ${JSON.stringify(s)}; expected an object`);
    const sr = new FieldReader(w.file, s, `workload.scenarios[${i}].`);
    sr.onlyKeys(['name', 'prefillTokens', 'generatedTokens', 'batch', 'comment']);
    return {
      name: sr.string('name') ?? sr.problem('name', 'a scenario name'),
      prefillTokens: sr.positiveInt('prefillTokens'),
      generatedTokens: sr.positiveInt('generatedTokens'),
      batch: sr.positiveInt('batch'),
    };
  });
  const names = scenarios.map((s) => s.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) fail(`${w.file}: field "workload.scenarios" names "${dup}" twice; scenario names must be unique`);
  return { weightDtype: dtype(w, 'weightDtype'), activationDtype: dtype(w, 'activationDtype'), kvCacheDtype: dtype(w, 'kvCacheDtype'), scenarios };
}

/** Whether a value is a scenario time: { prefillSeconds, decodeSeconds }, both numbers ≥ 0. */
export const isScenarioTime = (t: unknown): t is ScenarioTime =>
  isObject(t) && typeof t.prefillSeconds === 'number' && t.prefillSeconds >= 0 && typeof t.decodeSeconds === 'number' && t.decodeSeconds >= 0;

/** A profile's field of variant key → scenario time, checked; fails naming the file, the field and what was expected. */
export function scenarioTimes(file: string, field: string, value: unknown): Record<string, ScenarioTime> {
  if (!isObject(value)) fail(`${file}: field "${field}" is ${JSON.stringify(value)}; expected an object of variant key → { prefillSeconds, decodeSeconds }`);
  for (const [key, t] of Object.entries(value)) {
    if (!isScenarioTime(t)) fail(`${file}: field "${field}.${key}" is ${JSON.stringify(t)}; expected { prefillSeconds, decodeSeconds } ≥ 0`);
  }
  return value as Record<string, ScenarioTime>;
}

function parseMeasured(r: FieldReader): MeasuredCosts | null {
  const m = r.object('measured');
  if (m === null) return null;
  m.onlyKeys(['model', 'provider', 'threads', 'repeats', 'scenarios', 'calibration']);
  const provider = m.string('provider') ?? 'cpu';
  if (!(EXECUTION_PROVIDERS as readonly string[]).includes(provider)) m.problem('provider', `the execution provider it was measured on: ${EXECUTION_PROVIDERS.join(' or ')}`);
  const model = m.object('model') ?? m.problem('model', 'the measured model\'s directory and shape');
  const scenarios = m.object('scenarios') ?? m.problem('scenarios', 'measured times per scenario and variant');
  for (const [scenario, times] of Object.entries(scenarios.obj)) scenarioTimes(r.file, `measured.scenarios.${scenario}`, times);
  const calibration = m.object('calibration');
  for (const [scenario, c] of Object.entries(calibration?.obj ?? {})) {
    // The cost model applies a power law (the line is already folded into the times): it must be one.
    const power = isObject(c) ? c.power : undefined;
    const positive = (x: unknown) => typeof x === 'number' && x > 0 && Number.isFinite(x);
    const law = isObject(power) && positive(power.coefficient) && positive(power.exponent) && (power.offset === undefined || (typeof power.offset === 'number' && Number.isFinite(power.offset)));
    if (power !== undefined && !law) fail(`${r.file}: field "measured.calibration.${scenario}.power" is ${JSON.stringify(power)}; expected { coefficient, exponent }, both finite and > 0, and optionally a finite offset in seconds`);
  }
  return {
    model: {
      dir: model.string('dir') ?? '',
      hiddenSize: model.positiveInt('hiddenSize'),
      numHeads: model.positiveInt('numHeads'),
      headDim: model.positiveInt('headDim'),
      vocabSize: model.positiveInt('vocabSize'),
    },
    ...(provider !== 'cpu' ? { provider: provider as ExecutionProvider } : {}),
    threads: m.positiveInt('threads'),
    repeats: m.positiveInt('repeats'),
    scenarios: scenarios.obj as MeasuredCosts['scenarios'],
    // The line is already folded into the scenarios' times (kept as the record of how they were calibrated); a power law is applied by the cost model.
    ...(calibration !== null ? { calibration: calibration.obj as unknown as MeasuredCosts['calibration'] } : {}),
  };
}
