import { Command, CommanderError, Option } from 'commander';
import { TesseraError } from '../util/errors.js';
import { evalCommand, generateCommand, inspectCommand } from './commands.js';
import { defaultThreads, nonNegativeInt, positiveInt } from './options.js';
import { costCommand, profileCommand } from './hardware-commands.js';
import { addLibraryOptions, scoreCommand } from './score-command.js';
import { addSearchCommands } from './search-commands.js';
import { addModelCommands } from './model-commands.js';
import { DEFAULT_HARDWARE, DEFAULT_MODEL, DEFAULT_SPACE, DEFAULT_TEXT } from './paths.js';

const print = (line: string) => process.stdout.write(line + '\n');

function program(): Command {
  const p = new Command('tessera')
    .description('Neural architecture search for faster heterogeneous children of Llama-family LLMs')
    .exitOverride()
    .showHelpAfterError();
  const threads = () => new Option('--threads <n>', 'onnxruntime threads').argParser(positiveInt('--threads')).default(defaultThreads());

  p.command('inspect')
    .description('print the architecture, parameters per layer and sub-block, and KV-cache bytes per token')
    .argument('[model-dir]', 'HuggingFace checkpoint directory', DEFAULT_MODEL)
    .action((dir: string) => inspectCommand(dir, print));

  p.command('eval')
    .description('mean next-token NLL, perplexity and throughput on a text file')
    .argument('[model-dir]', 'HuggingFace checkpoint directory', DEFAULT_MODEL)
    .option('--data <text>', 'text file', DEFAULT_TEXT)
    .option('--tokens <n>', 'tokens to evaluate (stream protocol)', positiveInt('--tokens'), 16384)
    .option('--seq-len <n>', 'sequence length (default: the model\'s max positions)', positiveInt('--seq-len'))
    .addOption(new Option('--protocol <p>', 'stream: equal windows of the concatenated text; paragraphs: one sequence per blank-line paragraph').choices(['stream', 'paragraphs']).default('stream'))
    .option('--paragraphs <n>', 'paragraphs to use (paragraphs protocol)', positiveInt('--paragraphs'), 300)
    .addOption(threads())
    .action(async (dir: string, opts) => void (await evalCommand(dir, opts, print)));

  p.command('generate')
    .description('greedy continuation of a prompt')
    .argument('[model-dir]', 'HuggingFace checkpoint directory', DEFAULT_MODEL)
    .requiredOption('--prompt <text>', 'prompt text')
    .option('--tokens <n>', 'new tokens to generate at most', positiveInt('--tokens'), 60)
    .addOption(threads())
    .action(async (dir: string, opts) => generateCommand(dir, opts, print));

  p.command('cost')
    .description('predicted time per scenario, throughput and memory of the parent (or a child) on a hardware profile')
    .argument('[model-dir]', 'HuggingFace checkpoint directory', DEFAULT_MODEL)
    .option('--hardware <profile>', 'hardware profile JSON', DEFAULT_HARDWARE)
    .option('--arch <spec.json>', 'a child: any JSON with DeciLM block_configs (spec.json or config.json)')
    .action((dir: string, opts) => costCommand(dir, opts, print));

  p.command('profile')
    .description('measure every candidate sub-block of a space with onnxruntime on this machine; write a measured hardware profile')
    .option('--model <dir>', 'HuggingFace checkpoint directory', DEFAULT_MODEL)
    .option('--space <space.json>', 'search space', DEFAULT_SPACE)
    .option('--hardware <profile>', 'profile whose device and scenarios to measure', DEFAULT_HARDWARE)
    .requiredOption('--out <profile.json>', 'where to write the measured profile, e.g. hardware-profiles/measured-stories260K.json')
    .option('--repeats <n>', 'timed runs per measurement (median kept)', positiveInt('--repeats'), 5)
    .addOption(threads())
    .action(async (opts) => profileCommand(opts, print));

  addLibraryOptions(p.command('score')
    .description('build the block library: every candidate sub-block built from the parent, fitted, and scored (resumable)'))
    .requiredOption('--out <dir>', 'library directory, e.g. results/my-run')
    .option('--seed <n>', 'recorded in the manifest (every current step is deterministic)', nonNegativeInt('--seed'), 0)
    .action(async (opts) => scoreCommand(opts, print));

  addSearchCommands(p, print);
  addModelCommands(p, print);
  return p;
}

/** Runs the CLI; returns the process exit code. User errors print one line, never a stack trace. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    await program().parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof TesseraError) {
      process.stderr.write(`tessera: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
