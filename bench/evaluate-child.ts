/**
 * A child timed against its parent by the evaluate stage, in a process of its own (bench:baselines runs it
 * once per child so that no long-lived heap adds noise to the timings): writes the child's evaluation.json.
 *
 *   tsx bench/evaluate-child.ts <child-dir> <parent-dir> <text> <hardware-profile> <threads> <timing-seconds per scenario>
 */
import { evaluateChild } from '../src/evaluate/evaluate.js';
import { DEFAULT_PROTOCOL } from '../src/hardware/measure.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { cpuRuntime } from '../src/onnx/runtime.js';

const [child, parent, data, hardware, threads, seconds] = process.argv.slice(2);
await evaluateChild(child, loadCheckpoint(parent), {
  data,
  tokens: 2048,
  seqLen: 128,
  prompts: 0,
  promptTokens: 8,
  generateTokens: 0,
  timing: { ...DEFAULT_PROTOCOL, hardware, maxSeconds: Number(seconds) },
  runtime: cpuRuntime(Number(threads)),
});
