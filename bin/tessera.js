#!/usr/bin/env node
// The CLI is compiled to dist/ by `npm ci` (the `prepare` script runs `tsc`).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv);
