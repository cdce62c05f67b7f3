import { availableParallelism } from 'node:os';
import { fail } from '../util/errors.js';

/** A commander argument parser for positive integers that names the option in its error. */
export function positiveInt(option: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) fail(`option ${option}: "${value}" is not a positive integer`);
    return n;
  };
}

export const defaultThreads = () => availableParallelism();
