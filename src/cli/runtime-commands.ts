import type { Command } from 'commander';
import { runtimeTable } from '../targets/runtimes.js';
import type { Print } from './print.js';

/** `tessera runtimes`: what each inference runtime loads and computes right (what `--runtime` restricts a search to). */
export function addRuntimeCommands(p: Command, print: Print): void {
  p.command('runtimes')
    .description('the inference runtimes children can target (--runtime): the variant kinds, positions and widths each runs')
    .action(() => print(runtimeTable()));
}
