/**
 * Truth check of the cost model on this machine: the roofline `cpu-local` prediction, and the sum of
 * per-sub-block measurements (what `tessera profile` gives the search), each against the measured
 * whole-model latency of the parent, per scenario. Writes results/bench-cost-truth.json.
 */
import { join } from 'node:path';
import { parentArchitecture, type ModelConfig } from '../src/arch/config.js';
import { attentionKey, ffnKey } from '../src/arch/variants/registry.js';
import { type AttentionVariant, type FfnVariant } from '../src/arch/variant.js';
import { table } from '../src/util/format.js';
import { DEFAULT_HARDWARE, SHARED_DIR } from '../src/util/project.js';
import { ADDITIVE, rooflineCostModel, type CostModel } from '../src/hardware/cost-model.js';
import { loadHardwareProfile } from '../src/hardware/load.js';
import { measureModel, measureSubBlocks } from '../src/hardware/measure.js';
import { architectureCost } from '../src/hardware/model-cost.js';
import { totalSeconds, type ScenarioTime } from '../src/hardware/types.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { parseModelConfig } from '../src/model/config.js';
import { llamaConfigJson, randomWeights } from '../src/model/random.js';
import type { ModelWeights } from '../src/model/weights.js';
import { Rng } from '../src/util/rng.js';
import { cpuRuntime } from '../src/onnx/runtime.js';
import { median } from '../src/util/timing.js';
import { machine, writeResult } from './support.js';

const THREADS = machine().cores;
const OPTIONS = { runtime: cpuRuntime(THREADS), repeats: 5, warmup: 1 };

async function main() {
  const profile = loadHardwareProfile(DEFAULT_HARDWARE);
  const models: { name: string; config: ModelConfig; weights: ModelWeights }[] = [];
  for (const name of ['stories260K', 'babyllama-tok105-1M']) {
    const ck = loadCheckpoint(join(SHARED_DIR, 'models', name));
    models.push({ name, config: ck.config, weights: ck.weights });
  }
  const smol = parseModelConfig('SmolLM2-135M config', llamaConfigJson({ hidden: 576, layers: 30, heads: 9, kvHeads: 3, intermediate: 1536, vocab: 49152, maxPositions: 8192, ropeTheta: 100000 }));
  models.push({ name: 'SmolLM2-135M shape (random weights)', config: smol, weights: randomWeights(smol, parentArchitecture(smol), new Rng(135)) });

  const rows = [];
  for (const m of models) {
    const arch = parentArchitecture(m.config);
    const roofline = architectureCost(m.config, arch, profile, rooflineCostModel(m.config, profile));
    const variants = { attention: [[attentionKey(arch[0].attention), arch[0].attention] as [string, AttentionVariant]], ffn: [[ffnKey(arch[0].ffn), arch[0].ffn] as [string, FfnVariant]] };
    for (const [k, s] of profile.workload.scenarios.entries()) {
      process.stderr.write(`${m.name} · ${s.name}\n`);
      const whole = await measureModel(m.config, m.weights, arch, s, OPTIONS);
      const blocks = await measureSubBlocks(m.config, variants, s, OPTIONS);
      const fromBlocks: CostModel = { source: 'measured', attention: () => blocks.attention.values().next().value!, ffn: () => blocks.ffn.values().next().value!, rest: () => blocks.rest, ...ADDITIVE };
      const [sum] = architectureCost(m.config, arch, { ...profile, workload: { ...profile.workload, scenarios: [s] } }, fromBlocks);
      rows.push({
        model: m.name,
        scenario: s.name,
        measuredSeconds: whole,
        rooflineSeconds: { prefillSeconds: roofline[k].prefillSeconds, decodeSeconds: roofline[k].decodeSeconds },
        blockSumSeconds: { prefillSeconds: sum.prefillSeconds, decodeSeconds: sum.decodeSeconds },
        rooflineError: roofline[k].totalSeconds / totalSeconds(whole) - 1,
        blockSumError: sum.totalSeconds / totalSeconds(whole) - 1,
      });
    }
  }
  const pct = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;
  const ms = (t: ScenarioTime) => `${(t.prefillSeconds * 1e3).toFixed(2)} + ${(t.decodeSeconds * 1e3).toFixed(2)}`;
  console.log(table(
    ['model', 'scenario', 'measured ms (prefill + decode)', 'roofline ms', 'error', 'sum of measured blocks ms', 'error'],
    rows.map((r) => [r.model, r.scenario, ms(r.measuredSeconds), ms(r.rooflineSeconds), pct(r.rooflineError), ms(r.blockSumSeconds), pct(r.blockSumError)]),
  ));
  const summary = {
    rooflineMedianAbsError: median(rows.map((r) => Math.abs(r.rooflineError))),
    blockSumMedianAbsError: median(rows.map((r) => Math.abs(r.blockSumError))),
  };
  console.log(`\nmedian |error| of the total: roofline ${pct(summary.rooflineMedianAbsError)}, sum of measured blocks ${pct(summary.blockSumMedianAbsError)}`);
  const path = writeResult('bench-cost-truth.json', {
    what: `cost model vs measured whole-model latency of the parent (KV-cache generation, onnxruntime CPU, ${THREADS} threads, median of ${OPTIONS.repeats}); profile ${profile.file}`,
    machine: machine(),
    summary,
    rows,
  });
  console.log(`wrote ${path}`);
}

await main();
