import type { Checkpoint } from '../model/checkpoint.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { paragraphs, readText } from '../data/text.js';
import { paragraphSequences, takeWindows, type Sequences } from '../data/sequences.js';
import { evaluateNll, type NllResult } from '../eval/nll.js';
import { greedyGenerate } from '../eval/generate.js';
import { DecoderSession } from '../onnx/session.js';
import { cpuRuntime } from '../onnx/runtime.js';
import { fail } from '../util/errors.js';
import { inspectReport } from './inspect.js';
import { progressReporter } from './progress.js';

export type Print = (line: string) => void;

export function inspectCommand(modelDir: string, print: Print): void {
  print(inspectReport(loadCheckpoint(modelDir)));
}

export interface EvalOptions {
  data: string;
  tokens: number;
  seqLen?: number;
  protocol: 'stream' | 'paragraphs';
  paragraphs: number;
  threads: number;
}

export function evalSequences(ck: Checkpoint, text: string, opts: Omit<EvalOptions, 'data' | 'threads'>): Sequences {
  const tokenizer = loadTokenizer(ck.dir);
  const seqLen = Math.min(opts.seqLen ?? ck.config.maxPositions, ck.config.maxPositions);
  const docs = paragraphs(text);
  if (opts.protocol === 'paragraphs') {
    const seqs = paragraphSequences(tokenizer, docs.slice(0, opts.paragraphs), seqLen);
    if (seqs.length === 0) fail(`the text has no paragraph of 2 or more tokens to evaluate`);
    return seqs;
  }
  const { ids, count } = takeWindows(tokenizer, docs, 0, '', seqLen, opts.tokens);
  const windows = Array.from({ length: count }, (_, w) => Array.from(ids.subarray(w * seqLen, (w + 1) * seqLen)));
  if (windows.length === 0) fail(`the text holds fewer than --seq-len ${seqLen} tokens; use a longer text or a smaller --seq-len`);
  return windows;
}

export async function evalCommand(modelDir: string, opts: EvalOptions, print: Print): Promise<NllResult> {
  const ck = loadCheckpoint(modelDir);
  const seqs = evalSequences(ck, readText(opts.data), opts);
  const session = await DecoderSession.create(ck.config, ck.weights, {}, cpuRuntime(opts.threads));
  try {
    const r = await evaluateNll(session, seqs, { onProgress: progressReporter('eval') });
    const protocol = opts.protocol === 'paragraphs' ? `first ${opts.paragraphs} paragraphs, each with BOS` : `windows of ${seqs[0].length} tokens`;
    print(`data ${opts.data} (${protocol}): ${r.tokens} predicted tokens`);
    print(`mean NLL ${r.meanNll.toFixed(5)} nats/token · perplexity ${r.perplexity.toFixed(4)} · ${r.tokensPerSecond.toFixed(0)} tokens/s (${opts.threads} threads)`);
    return r;
  } finally {
    await session.release();
  }
}

export async function generateCommand(modelDir: string, opts: { prompt: string; tokens: number; threads: number }, print: Print): Promise<void> {
  const ck = loadCheckpoint(modelDir);
  const tokenizer = loadTokenizer(modelDir);
  const prompt = tokenizer.encode(opts.prompt);
  const limit = Math.min(prompt.length + opts.tokens, ck.config.maxPositions);
  const session = await DecoderSession.create(ck.config, ck.weights, { logits: 'last' }, cpuRuntime(opts.threads));
  try {
    // llama2.c-trained models mark a story boundary with BOS, so it ends a continuation like EOS does.
    const stop = [...ck.config.eosTokenIds, ...(ck.config.bosTokenId !== null ? [ck.config.bosTokenId] : [])];
    const ids = await greedyGenerate(session, prompt, limit, stop);
    print(tokenizer.decode(ids));
  } finally {
    await session.release();
  }
}
