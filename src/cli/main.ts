import { Command, CommanderError } from 'commander';
import { TesseraError } from '../util/errors.js';
import { addHardwareCommands } from './hardware-commands.js';
import { addModelCommands } from './model-commands.js';
import { addPipelineCommands } from './pipeline-commands.js';
import { addRuntimeCommands } from './runtime-commands.js';
import type { Print } from './print.js';

const print: Print = (line) => process.stdout.write(line + '\n');

/**
 * The `tessera` command. Each subcommand parses its flags, calls one stage (or, for `search`, the list of
 * stages) and prints; nothing below cli/ reads argv or prints.
 */
function program(exit: (code: number) => void): Command {
  const p = new Command('tessera')
    .description('Neural architecture search for faster heterogeneous children of Llama-family LLMs')
    .exitOverride()
    .showHelpAfterError();
  addModelCommands(p, print);
  addHardwareCommands(p, print);
  addPipelineCommands(p, print, exit);
  addRuntimeCommands(p, print);
  return p;
}

/** Runs the CLI; returns the process exit code. User errors print one line, never a stack trace. */
export async function main(argv: readonly string[]): Promise<number> {
  let code = 0;
  try {
    await program((c) => (code = c)).parseAsync([...argv]);
    return code;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof TesseraError) {
      process.stderr.write(`tessera: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
