import type { Command } from 'commander';
import { createKey, listKeys, revokeKey, type KeyRecord, type KeyScope } from '../../auth/api-keys.js';
import { OptoutError, describeValue } from '../../errors.js';
import { withStore } from '../args.js';

/** `100/s`, `100` or `0.5/s`: requests per second. */
function parseRateLimit(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*s)?\s*$/.exec(value);
  const n = m?.[1] === undefined ? NaN : Number(m[1]);
  if (!(n > 0) || !Number.isFinite(n)) {
    throw new OptoutError('OPTOUT_ERR_INVALID_OPTION', `Expected \`--rate-limit\` to be a positive rate such as 100/s, got ${describeValue(value)}`);
  }
  return n;
}

function describe(k: KeyRecord): string {
  return [k.id, k.scope, k.unit ?? '*', k.rateLimit === null ? '-' : `${k.rateLimit}/s`, k.createdAt, k.revokedAt === null ? 'active' : `revoked ${k.revokedAt}`].join('  ');
}

export function registerKeys(program: Command): void {
  const keys = program.command('keys')
    .description('API keys for optout serve (the server reads them at start-up)');

  keys.command('create')
    .description('create a key; it is printed once and only its hash is stored')
    .option('--unit <id>', 'the only business unit a check key may ask about (default: every unit; not with --scope admin)')
    .option('--scope <scope>', 'check (eligibility routes) or admin (everything)', 'check')
    .option('--rate-limit <n>', 'requests per second, e.g. 100/s (default: none)')
    .option('--json', 'print { id, key, ... } as JSON')
    .action(async (flags: { unit?: string; scope: string; rateLimit?: string; json?: boolean }, cmd: Command) => {
      const rateLimit = flags.rateLimit === undefined ? undefined : parseRateLimit(flags.rateLimit);
      const created = await withStore(cmd, 'optout keys create', (store) =>
        createKey(store, { unit: flags.unit, scope: flags.scope as KeyScope, rateLimit }), { create: true });
      if (flags.json) process.stdout.write(JSON.stringify({ ...created.record, key: created.key }) + '\n');
      else {
        process.stdout.write(`${created.key}\n`);
        process.stderr.write(`key ${created.id} (${created.record.scope}, unit ${created.record.unit ?? '*'}): shown once, store it now\n`);
      }
    });

  keys.command('list')
    .description('list keys (no secrets)')
    .option('--json', 'print a JSON array')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const list = await withStore(cmd, 'optout keys list', (store) => listKeys(store));
      if (flags.json) process.stdout.write(JSON.stringify(list) + '\n');
      else for (const k of list) process.stdout.write(describe(k) + '\n');
    });

  keys.command('revoke <id>')
    .description('revoke a key (a running server sees it after a restart)')
    .action(async (id: string, _flags: unknown, cmd: Command) => {
      const rec = await withStore(cmd, 'optout keys revoke', (store) => revokeKey(store, id));
      process.stdout.write(`revoked ${rec.id}\n`);
    });
}
