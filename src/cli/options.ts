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

export function nonNegativeInt(option: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) fail(`option ${option}: "${value}" is not a non-negative integer`);
    return n;
  };
}

export function nonNegativeNumber(option: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) fail(`option ${option}: "${value}" is not a non-negative number`);
    return n;
  };
}

export const defaultThreads = () => availableParallelism();
