import v8 from 'node:v8';
import vm from 'node:vm';

let gc: (() => void) | undefined;

/**
 * A full garbage collection now. Between phases whose garbage is gigabytes of tensors outside V8's heap (a
 * [tokens, vocabulary] distribution, a stage's logits), V8 collects when its own heap is under pressure, not the
 * process's memory: at 1B, evaluate's greedy generation began with a finished quality phase's ~1 GB still held.
 */
export function collectGarbage(): void {
  if (gc === undefined) {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as () => void;
  }
  gc();
}
