#!/usr/bin/env node
// The executable only: importing the CLI's program (program.ts) runs nothing.
import { main } from './program.js';

process.exitCode = await main(process.argv);
