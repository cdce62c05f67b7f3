#!/usr/bin/env node
// The CLI is compiled to dist/ by `npm ci` (the `prepare` script runs `tsc`).
import { dieWithLauncher, relaunchWithAllocatorSettings, wantsAllocatorRelaunch } from '../dist/cli/allocator.js';

if (wantsAllocatorRelaunch()) process.exitCode = await relaunchWithAllocatorSettings();
else {
  dieWithLauncher();
  const { main } = await import('../dist/cli/main.js');
  process.exitCode = await main(process.argv);
}
