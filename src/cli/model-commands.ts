import { Option, type Command } from 'commander';
import { paragraphSequences, takeWindows, type Sequences } from '../data/sequences.js';
import { paragraphs, readText } from '../data/text.js';
import { generationOptions, greedyGenerate } from '../lm/generate.js';
import { perplexity } from '../lm/perplexity.js';
import { openCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { StagedDecoder } from '../onnx/staged.js';
import { fail } from '../util/errors.js';
import { DEFAULT_MODEL, DEFAULT_TEXT } from '../util/project.js';
import { inspectReport } from './inspect.js';
import { ensureFits, forwardMemory } from '../run/memory.js';
import { positiveInt, runtimeOf, stageOption, threadsOption } from './options.js';
import type { Print } from './print.js';
import { progressLine } from './reporter.js';

interface PerplexityFlags {
  data: string;
  tokens: number;
  seqLen?: number;
  protocol: 'stream' | 'paragraphs';
  paragraphs: number;
  threads: number;
  stageMb: number;
}

/** Attention's memory grows with the square of the window: 131,072-token windows (Llama 3's maximum) would not fit. */
export const DEFAULT_PERPLEXITY_SEQ_LEN = 2048;

/** The sequences `tessera perplexity` scores: equal windows of the concatenated text, or one per paragraph. */
export function perplexitySequences(ck: Checkpoint, text: string, f: Omit<PerplexityFlags, 'data' | 'threads'>): Sequences {
  const tokenizer = loadTokenizer(ck.dir);
  const docs = paragraphs(text);
  if (f.seqLen !== undefined && f.seqLen > ck.config.maxPositions) fail(`option --seq-len: ${f.seqLen} exceeds the model's ${ck.config.maxPositions} positions`);
  if (f.protocol === 'paragraphs') {
    const seqs = paragraphSequences(tokenizer, docs.slice(0, f.paragraphs), Math.min(f.seqLen ?? DEFAULT_PERPLEXITY_SEQ_LEN, ck.config.maxPositions));
    if (seqs.length === 0) fail(`the text has no paragraph of 2 or more tokens to evaluate`);
    return seqs;
  }
  // Windows never hold more than --tokens between them: a default window longer than that is cut to it.
  const seqLen = Math.min(f.seqLen ?? Math.min(DEFAULT_PERPLEXITY_SEQ_LEN, f.tokens), ck.config.maxPositions);
  if (seqLen > f.tokens) fail(`--tokens ${f.tokens} is less than one window of --seq-len ${seqLen}; raise --tokens or lower --seq-len`);
  const { ids, count } = takeWindows(tokenizer, docs, 0, '', seqLen, Math.floor(f.tokens / seqLen) * seqLen);
  const windows = Array.from({ length: count }, (_, w) => Array.from(ids.subarray(w * seqLen, (w + 1) * seqLen)));
  if (windows.length === 0) fail(`the text holds fewer than --seq-len ${seqLen} tokens; use a longer text or a smaller --seq-len`);
  return windows;
}

/** Commands about one model: what it is, how well it predicts a text, what it generates. */
export function addModelCommands(p: Command, print: Print): void {
  p.command('inspect')
    .description('print the architecture, parameters per layer and sub-block, and KV-cache bytes per token')
    .argument('[model-dir]', 'HuggingFace checkpoint directory', DEFAULT_MODEL)
    .action((dir: string) => print(inspectReport(openCheckpoint(dir))));

  p.command('perplexity')
    .description('a model\'s mean next-token NLL, perplexity and throughput on a text file')
    .argument('[model-dir]', 'HuggingFace checkpoint directory', DEFAULT_MODEL)
    .option('--data <text>', 'text file', DEFAULT_TEXT)
    .option('--tokens <n>', 'tokens to evaluate, at most (stream protocol: whole windows)', positiveInt('--tokens'), 16384)
    .option('--seq-len <n>', `sequence length (default: the model\'s max positions, at most ${DEFAULT_PERPLEXITY_SEQ_LEN} and at most --tokens)`, positiveInt('--seq-len'))
    .addOption(new Option('--protocol <p>', 'stream: equal windows of the concatenated text; paragraphs: one sequence per blank-line paragraph').choices(['stream', 'paragraphs']).default('stream'))
    .option('--paragraphs <n>', 'paragraphs to use (paragraphs protocol)', positiveInt('--paragraphs'), 300)
    .addOption(threadsOption()).addOption(stageOption())
    .action(async (dir: string, f: PerplexityFlags) => {
      const ck = openCheckpoint(dir);
      const seqs = perplexitySequences(ck, readText(f.data), f);
      const runtime = runtimeOf(f);
      ensureFits('perplexity', forwardMemory(ck.config, ck.architecture, { stageBytes: runtime.stageBytes, seqLen: Math.max(...seqs.map((q) => q.length)) }));
      const r = await perplexity(ck.config, ck.source, runtime, seqs, { onProgress: progressLine('perplexity') });
      const protocol = f.protocol === 'paragraphs' ? `first ${f.paragraphs} paragraphs, each with BOS` : `windows of ${seqs[0].length} tokens`;
      print(`data ${f.data} (${protocol}): ${r.tokens} predicted tokens`);
      print(`mean NLL ${r.meanNll.toFixed(5)} nats/token · perplexity ${r.perplexity.toFixed(4)} · ${r.tokensPerSecond.toFixed(0)} tokens/s (${f.threads} threads)`);
    });

  p.command('generate')
    .description('greedy continuation of a prompt')
    .argument('[model-dir]', 'HuggingFace checkpoint directory', DEFAULT_MODEL)
    .requiredOption('--prompt <text>', 'prompt text')
    .option('--tokens <n>', 'new tokens to generate at most', positiveInt('--tokens'), 60)
    .addOption(threadsOption()).addOption(stageOption())
    .action(async (dir: string, f: { prompt: string; tokens: number; threads: number; stageMb: number }) => {
      const ck = openCheckpoint(dir);
      const tokenizer = loadTokenizer(dir);
      const prompt = tokenizer.encode(f.prompt);
      const limit = Math.min(prompt.length + f.tokens, ck.config.maxPositions);
      const session = await StagedDecoder.create(ck.config, ck.source, generationOptions(ck.config), runtimeOf(f));
      try {
        // llama2.c-trained models mark a story boundary with BOS, so it ends a continuation like EOS does.
        const stop = [...ck.config.eosTokenIds, ...(ck.config.bosTokenId !== null ? [ck.config.bosTokenId] : [])];
        print(tokenizer.decode(await greedyGenerate(session, prompt, limit, stop, ck.architecture)));
      } finally {
        await session.release();
      }
    });
}
