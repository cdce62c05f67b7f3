import { resolve } from 'node:path';
import type { Command } from 'commander';
import { modelParams } from '../arch/params.js';
import { costModelFor } from '../hardware/cost-model.js';
import { loadHardwareProfile } from '../hardware/load.js';
import { architectureCost } from '../hardware/model-cost.js';
import { measuredProfile, PROFILE_SECONDS } from '../hardware/profile.js';
import { recalibratedProfile } from '../hardware/recalibrate.js';
import { isObject, readJsonFile } from '../model/json.js';
import { fail } from '../util/errors.js';
import { loadArchitectureFile } from '../model/arch-file.js';
import { readModelSpec } from '../model/checkpoint.js';
import { loadSearchSpace } from '../space/expand.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { DEFAULT_HARDWARE, DEFAULT_MODEL, DEFAULT_SPACE } from '../util/project.js';
import { bytes, int, table } from '../util/format.js';
import { nonNegativeNumber, positiveInt, providerOption, runtimeOf, stageOption, threadsOption } from './options.js';
import type { Print } from './print.js';
import type { ExecutionProvider } from '../onnx/runtime.js';
import { cliReporter } from './reporter.js';

const ms = (s: number) => (s * 1000 < 10 ? (s * 1000).toFixed(3) : (s * 1000).toFixed(1));

/** Commands about costs: predicted time and memory on a profile, and measured profiles of this machine. */
export function addHardwareCommands(p: Command, print: Print): void {
  p.command('cost')
    .description('predicted time per scenario, throughput and memory of the parent (or a child) on a hardware profile')
    .argument('[model-dir]', 'HuggingFace checkpoint directory', DEFAULT_MODEL)
    .option('--hardware <profile>', 'hardware profile JSON', DEFAULT_HARDWARE)
    .option('--arch <spec.json>', 'a child: any JSON with DeciLM block_configs (spec.json or config.json)')
    .action((modelDir: string, f: { hardware: string; arch?: string }) => {
      const { config, architecture } = readModelSpec(modelDir);
      const profile = loadHardwareProfile(f.hardware);
      const arch = f.arch !== undefined ? loadArchitectureFile(f.arch, config) : architecture;
      const costs = costModelFor(config, profile);
      const rows = architectureCost(config, arch, profile, costs);
      print(`${f.arch ?? 'the model'} ${f.arch ? `(a child of ${modelDir})` : modelDir} (${int(modelParams(config, arch))} params) on ${profile.device.name} — ${costs.source} costs from ${profile.file}`);
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
    });

  p.command('profile')
    .description('measure every candidate sub-block of a space with onnxruntime on this machine; write a measured hardware profile')
    .option('--model <dir>', 'HuggingFace checkpoint directory', DEFAULT_MODEL)
    .option('--space <space.json>', 'search space', DEFAULT_SPACE)
    .option('--hardware <profile>', 'profile whose device and scenarios to measure', DEFAULT_HARDWARE)
    .requiredOption('--out <profile.json>', 'where to write the measured profile, e.g. hardware-profiles/measured-stories260K.json')
    .option('--repeats <n>', 'rounds per measurement at least: each builds every sub-block stack and calibration model afresh and times it (median kept)', positiveInt('--repeats'), 5)
    .option('--min-seconds <s>', 'seconds of sub-block rounds per scenario at least (short, noisy timings get more rounds); the calibration models, timed together in rounds of all of them, get as many timed seconds to twice as many', nonNegativeNumber('--min-seconds'), PROFILE_SECONDS)
    .addOption(threadsOption()).addOption(stageOption()).addOption(providerOption())
    .action(async (f: { model: string; space: string; hardware: string; out: string; threads: number; stageMb: number; provider: ExecutionProvider; repeats: number; minSeconds: number }) => {
      const { config } = readModelSpec(f.model);
      const space = loadSearchSpace(f.space, config);
      const runtime = runtimeOf(f);
      await runtime.check();
      const name = f.out.replace(/^.*\//, '').replace(/\.json$/, '');
      writeJsonAtomic(f.out, await measuredProfile({ dir: resolve(f.model), config }, space, f.hardware, name, { runtime, repeats: f.repeats, minSeconds: f.minSeconds, reporter: cliReporter(print) }));
      print(`wrote ${f.out}`);
    });

  p.command('recalibrate')
    .description('fit a measured profile\'s calibration again from the timings it keeps, without timing anything (after an upgrade of Tessera\'s fits)')
    .argument('<profile.json>', 'a profile written by `tessera profile`')
    .option('--out <profile.json>', 'where to write the recalibrated profile (default: in place)')
    .action((file: string, f: { out?: string }) => {
      const json = readJsonFile(file, 'hardware profile');
      if (!isObject(json)) fail(`${file}: expected a JSON object`);
      const { profile, lines } = recalibratedProfile(file, json);
      for (const line of lines) print(line);
      writeJsonAtomic(f.out ?? file, profile);
      print(`wrote ${f.out ?? file}`);
    });
}
