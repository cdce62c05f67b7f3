import { cpus } from 'node:os';
import { modelParams } from '../arch/params.js';
import { costModelFor } from '../hardware/cost-model.js';
import { loadHardwareProfile } from '../hardware/load.js';
import { measureSubBlocks, type MeasureOptions } from '../hardware/measure.js';
import { architectureCost } from '../hardware/model-cost.js';
import type { MeasuredCosts, ScenarioTime } from '../hardware/types.js';
import { loadArchitectureFile } from '../model/arch-file.js';
import { readModelSpec } from '../model/checkpoint.js';
import { isObject, readJsonFile } from '../model/json.js';
import { loadSearchSpace } from '../space/expand.js';
import { distinctVariants } from '../space/variants.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { cpuRuntime } from '../onnx/runtime.js';
import { fail } from '../util/errors.js';
import type { Print } from './commands.js';
import { bytes, int, table } from './format.js';
import { progressReporter } from './progress.js';

const ms = (s: number) => (s * 1000 < 10 ? (s * 1000).toFixed(3) : (s * 1000).toFixed(1));

/** `tessera cost`: a parent's or child's predicted time, throughput and memory per scenario of a profile. */
export function costCommand(modelDir: string, opts: { hardware: string; arch?: string }, print: Print): void {
  const { config, architecture } = readModelSpec(modelDir);
  const profile = loadHardwareProfile(opts.hardware);
  const arch = opts.arch !== undefined ? loadArchitectureFile(opts.arch, config) : architecture;
  const costs = costModelFor(config, profile);
  const rows = architectureCost(config, arch, profile, costs);
  print(`${opts.arch ?? 'the model'} ${opts.arch ? `(a child of ${modelDir})` : modelDir} (${int(modelParams(config, arch))} params) on ${profile.device.name} — ${costs.source} costs from ${profile.file}`);
  print(`weights ${profile.workload.weightDtype}, activations ${profile.workload.activationDtype}, KV cache ${profile.workload.kvCacheDtype}; device memory ${bytes(profile.device.memoryCapacity)}\n`);
  print(table(
    ['scenario', 'batch', 'prefill+gen', 'prefill ms', 'decode ms/token', 'total ms', 'tokens/s', 'weights', 'KV cache', 'fits'],
    rows.map((r) => [
      r.scenario.name,
      String(r.scenario.batch),
      `${r.scenario.prefillTokens}+${r.scenario.generatedTokens}`,
      ms(r.prefillSeconds),
      ms(r.decodeSecondsPerToken),
      ms(r.totalSeconds),
      r.tokensPerSecond.toFixed(1),
      bytes(r.weightBytes),
      bytes(r.kvCacheBytes),
      r.fitsInMemory ? 'yes' : 'NO',
    ]),
  ));
  const tooLong = rows.filter((r) => r.scenario.prefillTokens + r.scenario.generatedTokens > config.maxPositions).map((r) => r.scenario.name);
  if (tooLong.length > 0) print(`\nnote: ${tooLong.join(', ')} exceed${tooLong.length === 1 ? 's' : ''} the model's ${config.maxPositions} positions (max_position_embeddings); costs are extrapolated`);
}

/**
 * `tessera profile`: measures every distinct sub-block of a space with onnxruntime on this machine, for
 * each scenario of a base profile, and writes a profile whose `measured` section the search uses instead
 * of the roofline.
 */
export async function profileCommand(opts: { model: string; space: string; hardware: string; out: string; threads: number; repeats: number }, print: Print): Promise<void> {
  const { config } = readModelSpec(opts.model);
  const space = loadSearchSpace(opts.space, config);
  const base = loadHardwareProfile(opts.hardware);
  const baseJson = readJsonFile(opts.hardware, 'hardware profile');
  if (!isObject(baseJson)) fail(`${opts.hardware}: expected a JSON object`);
  const variants = distinctVariants(space);
  const measureOptions: MeasureOptions = { runtime: cpuRuntime(opts.threads), repeats: opts.repeats, warmup: 2 };
  const scenarios: Record<string, Record<string, ScenarioTime>> = {};
  for (const s of base.workload.scenarios) {
    const t = await measureSubBlocks(config, variants, s, measureOptions, progressReporter(`profile ${s.name}`));
    scenarios[s.name] = { ...Object.fromEntries(t.attention), ...Object.fromEntries(t.ffn), rest: t.rest };
  }
  const measured: MeasuredCosts = {
    model: { dir: opts.model, hiddenSize: config.hiddenSize, numHeads: config.numHeads, headDim: config.headDim, vocabSize: config.vocabSize },
    threads: opts.threads,
    repeats: opts.repeats,
    scenarios,
  };
  const name = opts.out.replace(/^.*\//, '').replace(/\.json$/, '');
  const description = `Measured with onnxruntime by \`tessera profile\` on ${new Date().toISOString().slice(0, 10)} (${cpus()[0]?.model ?? 'unknown CPU'}, ${opts.threads} threads): ` +
    `every sub-block of ${space.name} for ${opts.model}, scenarios from ${base.name}.`;
  writeJsonAtomic(opts.out, { ...baseJson, name, description, measured });
  print(`measured ${variants.attention.length} attention and ${variants.ffn.length} FFN variants in ${base.workload.scenarios.length} scenarios; wrote ${opts.out}`);
}
