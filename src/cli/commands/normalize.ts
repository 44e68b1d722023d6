import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { normalizeEmail } from '../../policy/email.js';

function line(input: string): string {
  const n = normalizeEmail(input);
  return JSON.stringify(n.valid
    ? { input, valid: true, address: n.address, key: n.key, reason: null }
    : { input, valid: false, address: null, key: null, reason: n.reason }) + '\n';
}

export function registerNormalize(program: Command): void {
  program.command('normalize [email...]')
    .description('show how the address policy reads addresses (NDJSON); reads stdin, one per line, without arguments')
    .action(async (emails: string[]) => {
      if (emails.length > 0) {
        for (const e of emails) process.stdout.write(line(e));
        return;
      }
      const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
      for await (const input of rl) {
        if (!process.stdout.write(line(input))) await new Promise((r) => process.stdout.once('drain', r));
      }
    });
}
