import { availableParallelism } from 'node:os';
import { Option, type Command } from 'commander';
import { DEFAULT_STAGE_BYTES, EXECUTION_PROVIDERS, runtimeFor, type ExecutionProvider, type Runtime } from '../onnx/runtime.js';
import { fail } from '../util/errors.js';

/** Commander argument parsers that name the option in their error. */
export function positiveInt(option: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) fail(`option ${option}: "${value}" is not a positive integer`);
    return n;
  };
}

export function nonNegativeInt(option: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) fail(`option ${option}: "${value}" is not a non-negative integer`);
    return n;
  };
}

export function positiveNumber(option: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!(n > 0) || !Number.isFinite(n)) fail(`option ${option}: "${value}" is not a positive number`);
    return n;
  };
}

export function nonNegativeNumber(option: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!(n >= 0) || !Number.isFinite(n)) fail(`option ${option}: "${value}" is not a non-negative number`);
    return n;
  };
}

export const defaultThreads = () => availableParallelism();

/** `--threads`: the runtime every command's graphs run in. */
export const threadsOption = () => new Option('--threads <n>', 'onnxruntime threads').argParser(positiveInt('--threads')).default(defaultThreads());

/** `--stage-mb`: the float32 megabytes of weights one session holds (a larger model runs in stages). */
export const stageOption = () =>
  new Option('--stage-mb <n>', 'float32 MiB of weights one onnxruntime session holds; a larger model runs in stages of layers (less: less memory, more time)')
    .argParser(positiveInt('--stage-mb'))
    .default(DEFAULT_STAGE_BYTES / 2 ** 20);

/** `--provider`: where the graphs a command times run (commands that time: profile, evaluate). */
export const providerOption = () =>
  new Option('--provider <name>', 'onnxruntime execution provider the timings run on: cpu, or webgpu (the GPU, through Vulkan; K/V caches stay on it)')
    .choices(EXECUTION_PROVIDERS)
    .default('cpu');

/** The runtime options every command that runs graphs takes. */
export const runtimeOptions = (c: Command): Command => c.addOption(threadsOption()).addOption(stageOption());

export const runtimeOf = (flags: { threads: number; stageMb?: number; provider?: ExecutionProvider }): Runtime =>
  runtimeFor(flags.provider ?? 'cpu', flags.threads, (flags.stageMb ?? DEFAULT_STAGE_BYTES / 2 ** 20) * 2 ** 20);

/** Adds options to a command; returns it, for chaining. */
export const withOptions = (c: Command, ...groups: ((c: Command) => Command)[]) => groups.reduce((acc, g) => g(acc), c);
