#!/usr/bin/env node
import { runDemoCli } from './cli-main.js';

// `ztgate-demo`, what `npm start` runs: the embedded demo composed from the product (demo/cli-main.ts,
// which tests run in-process); this file is the process.
const code = await runDemoCli(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
