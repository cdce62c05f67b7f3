import { availableParallelism } from 'node:os';
import { Option, type Command } from 'commander';
import { cpuRuntime, type Runtime } from '../onnx/runtime.js';
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

export const defaultThreads = () => availableParallelism();

/** `--threads`: the runtime every command's graphs run in. */
export const threadsOption = () => new Option('--threads <n>', 'onnxruntime threads').argParser(positiveInt('--threads')).default(defaultThreads());
export const runtimeOf = (flags: { threads: number }): Runtime => cpuRuntime(flags.threads);

/** Adds options to a command; returns it, for chaining. */
export const withOptions = (c: Command, ...groups: ((c: Command) => Command)[]) => groups.reduce((acc, g) => g(acc), c);
