#!/usr/bin/env node
import { runCli } from './cli-main.js';

// The command line lives in cli-main.ts, which tests run in-process; this file is the process.
const code = await runCli(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
