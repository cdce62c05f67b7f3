/**
 * Speed on a GPU: parents and children timed through onnxruntime's WebGPU provider (K/V caches kept on the GPU),
 * against the speed-ups the h200 profile's roofline predicts for them. Writes results/bench-gpu.{json,md}.
 *
 *   npm run bench:gpu -- --plan    any machine: the children to time → results/bench-gpu-plan.json
 *   npm run bench:gpu              a machine with a GPU (a Vulkan driver): times the plan's models
 *     [--out <dir>] [--seconds <s> per scenario] [--deadline <s> for the whole run] [--threads <n>] [--models a,b]
 *
 * The plan: the SmolLM2-135M shape's architectures nearest above ×1.25–×3 among seeded draws of the puzzle space
 * (bench:speed's shape part, priced by the roofline), and the children `tessera solve` picks for the shared models at
 * ×1.5–×3 under the roofline (bench:speed's runs, scored here if they are not). Timing needs no file beside the plan:
 * each model runs with seeded random weights of its config (speed does not depend on the values), so a GPU machine
 * without ../shared can run it. Each scenario's rows are written as soon as they are measured.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parentArchitecture } from '../src/arch/config.js';
import type { Architecture } from '../src/arch/variant.js';
import { score } from '../src/bld/score.js';
import { describeSpeedup, type SpeedupInterval } from '../src/hardware/interval.js';
import { loadHardwareProfile } from '../src/hardware/load.js';
import { compareModels, DEFAULT_PROTOCOL } from '../src/hardware/measure.js';
import { totalSeconds } from '../src/hardware/types.js';
import { parseModelConfig } from '../src/model/config.js';
import { timingWeightPool } from '../src/model/random.js';
import { cpuRuntime, webgpuRuntime } from '../src/onnx/runtime.js';
import { loadSearchSpace } from '../src/space/expand.js';
import { writeFileAtomic, writeJsonAtomic } from '../src/util/atomic.js';
import { TesseraError } from '../src/util/errors.js';
import { table } from '../src/util/format.js';
import { DEFAULT_SPACE, PROJECT_ROOT, SHARED_DIR } from '../src/util/project.js';
import { Rng } from '../src/util/rng.js';
import { sampledChildren } from './sampled-children.js';
import { speedRun, tesseraChild } from './speed-runs.js';
import { SMOLLM2_135M } from './shapes.js';
import { machine, RESULTS_DIR } from './support.js';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
};
const HARDWARE = join(PROJECT_ROOT, 'hardware-profiles/h200.json');
const PLAN = join(RESULTS_DIR, 'bench-gpu-plan.json');
const SHAPE_BUDGETS = [1.25, 1.5, 2, 3];
const SHARED_BUDGETS = [1.5, 2, 3];

interface PlannedChild {
  readonly budget: number;
  readonly architecture: Architecture;
  /** The roofline's speed-up per scenario of the profile, in its order. */
  readonly predicted: readonly number[];
}

interface PlannedModel {
  readonly name: string;
  readonly configJson: Record<string, unknown>;
  readonly children: readonly PlannedChild[];
}

interface Plan {
  readonly hardware: string;
  readonly models: readonly PlannedModel[];
  /** Budgets no architecture reached. */
  readonly unreachable: readonly string[];
}

/** The children to time (see the header). */
async function makePlan(): Promise<Plan> {
  const profile = loadHardwareProfile(HARDWARE);
  const unreachable: string[] = [];
  const shapeConfig = parseModelConfig('SmolLM2-135M config', SMOLLM2_135M);
  const drawn = sampledChildren(shapeConfig, loadSearchSpace(DEFAULT_SPACE, shapeConfig), profile, SHAPE_BUDGETS);
  for (const b of SHAPE_BUDGETS) if (!drawn.some((c) => c.budget === b)) unreachable.push(`SmolLM2-135M shape ×${b}`);
  const models: PlannedModel[] = [{ name: 'SmolLM2-135M shape', configJson: SMOLLM2_135M, children: drawn.map((c) => ({ budget: c.budget, architecture: c.arch, predicted: c.predicted })) }];
  for (const model of ['babyllama-tok105-1M', 'stories260K']) {
    process.stderr.write(`plan: ${model}\n`);
    // bench:speed's run of this model: its scores are reused when that bench has made them.
    const run = speedRun(model);
    await score(run, { workers: machine().cores });
    const children: PlannedChild[] = [];
    for (const budget of SHARED_BUDGETS) {
      const s = await tesseraChild(run, HARDWARE, budget, cpuRuntime(machine().cores));
      if (s === null) unreachable.push(`${model} ×${budget}`);
      else children.push({ budget, architecture: s.architecture, predicted: s.spec.predicted.map((p) => p.speedup) });
    }
    models.push({ name: model, configJson: JSON.parse(readFileSync(join(SHARED_DIR, 'models', model, 'config.json'), 'utf8')), children });
  }
  return { hardware: relative(PROJECT_ROOT, HARDWARE), models, unreachable };
}

interface GpuRow {
  model: string;
  budget: number;
  scenario: string;
  /** The roofline's speed-up (h200 profile). */
  predicted: number;
  measured: SpeedupInterval;
  said: string;
  /** |predicted − measured| / measured. */
  error: number;
  /** The parent's whole scenario, seconds, as timed here. */
  parentSeconds: number;
}

/** What the GPU is, as nvidia-smi names it (null where there is none to ask). */
function gpuName(): string | null {
  try {
    return execFileSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

/** Times every model of the plan in every scenario of its profile, writing the rows so far after each scenario. */
async function timePlan(plan: Plan, out: string): Promise<void> {
  const profile = loadHardwareProfile(join(PROJECT_ROOT, plan.hardware));
  const threads = Number(arg('--threads') ?? machine().cores);
  // One session a model: the GPU holds a whole model, and stages would send the residual stream through the host.
  const runtime = webgpuRuntime(threads, 64 * 2 ** 30);
  await runtime.check();
  const seconds = Number(arg('--seconds') ?? 30);
  const deadline = Date.now() + 1000 * Number(arg('--deadline') ?? Infinity);
  const rows: GpuRow[] = [];
  const skipped: string[] = [];
  const gpu = gpuName();
  const write = () => {
    const result = { what: 'parents and children timed on a GPU (onnxruntime WebGPU) against the h200 roofline', machine: { ...machine(), gpu }, hardware: plan.hardware, rows, skipped, unreachable: plan.unreachable };
    writeJsonAtomic(join(out, 'bench-gpu.json'), result);
    writeFileAtomic(join(out, 'bench-gpu.md'), markdown(rows, skipped, plan, gpu));
  };
  const only = arg('--models')?.split(',');
  const timed = plan.models.filter((m) => only === undefined || only.includes(m.name)).map((m) => {
    const config = parseModelConfig(`${m.name} config`, m.configJson);
    const pool = timingWeightPool(config, new Rng(0x6a1));
    return { plan: m, models: [parentArchitecture(config), ...m.children.map((c) => c.architecture)].map((arch) => ({ config, weights: pool(arch), arch })) };
  });
  // Scenario by scenario, so that a deadline cuts the longest scenarios of every model rather than whole models.
  for (const [k, s] of profile.workload.scenarios.entries()) {
    for (const { plan: m, models } of timed) {
      if (Date.now() > deadline) {
        skipped.push(`${m.name} · ${s.name} (the run's deadline had passed)`);
        continue;
      }
      process.stderr.write(`gpu: ${m.name} · ${s.name}\n`);
      // One scenario that the device cannot run (a buffer over its limits, say) must not cost the others: a GPU
      // machine is lent for minutes.
      const c = await compareModels(models, s, { ...DEFAULT_PROTOCOL, runtime, maxSeconds: seconds }).catch((e: unknown) => {
        skipped.push(`${m.name} · ${s.name} (failed: ${String(e).split('\n')[0].slice(0, 300)})`);
        return null;
      });
      if (c === null) {
        write();
        continue;
      }
      for (const [j, child] of m.children.entries()) {
        const measured = c.speedups[j];
        const predicted = child.predicted[k];
        rows.push({ model: m.name, budget: child.budget, scenario: s.name, predicted, measured, said: describeSpeedup(measured), error: Math.abs(predicted - measured.estimate) / measured.estimate, parentSeconds: totalSeconds(c.medians[0]) });
      }
      write();
    }
  }
  write();
}

function markdown(rows: readonly GpuRow[], skipped: readonly string[], plan: Plan, gpu: string | null): string {
  const errors = rows.map((r) => r.error).sort((a, b) => a - b);
  const median = errors.length === 0 ? NaN : errors[Math.floor((errors.length - 1) / 2)];
  return [
    '# bench:gpu — speed-ups on a GPU against the h200 roofline', '',
    `${gpu ?? 'GPU unknown (no nvidia-smi)'}; host ${machine().cpu}; ${new Date().toISOString()}. Command: \`npm run bench:gpu\` (plan: \`npm run bench:gpu -- --plan\`).`,
    'Each model runs as one onnxruntime session on the WebGPU provider (float32, K/V caches kept on the GPU), seeded random weights; parent and children in interleaved rounds as bench:speed times them.',
    `Predicted: the ${plan.hardware} roofline (bf16 serving kernels at the datasheet's rates): how far its ratios carry to this stack is the question, not a tuning target.`, '',
    ...table(['model', 'budget', 'scenario', 'parent ms', 'predicted (roofline)', 'measured (WebGPU)', '|error|'], rows.map((r) => [r.model, `×${r.budget}`, r.scenario, (1000 * r.parentSeconds).toFixed(1), `×${r.predicted.toFixed(2)}`, r.said, `${(100 * r.error).toFixed(0)}%`])).split('\n').map((l) => `    ${l}`), '',
    ...(rows.length === 0 ? [] : [`- Median |predicted − measured| / measured: ${(100 * median).toFixed(0)}%; worst ${(100 * errors[errors.length - 1]).toFixed(0)}%.`]),
    ...(skipped.length === 0 ? [] : [`- Not timed: ${skipped.join('; ')}.`]),
    ...(plan.unreachable.length === 0 ? [] : [`- Budgets without a child under the roofline: ${plan.unreachable.join('; ')}.`]), '',
  ].join('\n');
}

if (process.argv.includes('--plan')) {
  writeJsonAtomic(PLAN, await makePlan());
  console.log(`wrote ${PLAN}`);
} else {
  if (!existsSync(PLAN)) throw new Error(`${PLAN}: no plan; make one with npm run bench:gpu -- --plan`);
  const out = arg('--out') ?? RESULTS_DIR;
  try {
    await timePlan(JSON.parse(readFileSync(PLAN, 'utf8')) as Plan, out);
  } catch (e) {
    if (!(e instanceof TesseraError)) throw e;
    console.error(e.message);
    process.exit(1);
  }
  console.log(readFileSync(join(out, 'bench-gpu.md'), 'utf8'));
}
